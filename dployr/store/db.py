"""The SQLite database: one writer connection (BEGIN IMMEDIATE), one reader, migrations, backup."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from dployr.ids import now_iso
from dployr.store.reader import BatchReader
from dployr.tasks import run_to_end

_LOGGER = logging.getLogger(__name__)
_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql\Z")
BUSY_TIMEOUT_MS = 5000

Row = sqlite3.Row
Params = Sequence[Any] | dict[str, Any]


class MigrationError(Exception):
    """A migration failed (and was rolled back) or the schema is newer than this code."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def bundled_migrations() -> list[Migration]:
    folder = resources.files("dployr.store") / "migrations"
    return load_migrations((entry.name, entry.read_text("utf-8")) for entry in folder.iterdir())


def load_migrations(files: Iterable[tuple[str, str]]) -> list[Migration]:
    found = []
    for name, sql in files:
        match = _MIGRATION_NAME.match(name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), sql))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers in {versions}")
    return found


PRAGMAS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA journal_mode = WAL",
    # FULL: a commit is on disk before we answer, so an accepted deploy survives a power loss.
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in PRAGMAS:
        await conn.execute(pragma)
    return conn


class Transaction:
    """The writer connection inside BEGIN IMMEDIATE … COMMIT, and the events appended in it
    (store/events.py), which the Database publishes once the COMMIT is done."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self.events: list[Any] = []

    async def execute(self, sql: str, params: Params = ()) -> aiosqlite.Cursor:
        return await self._conn.execute(sql, params)

    async def executemany(self, sql: str, params: Iterable[Params]) -> aiosqlite.Cursor:
        return await self._conn.executemany(sql, params)

    async def execute_fetchall(self, sql: str, params: Params = ()) -> Iterable[Row]:
        return await self._conn.execute_fetchall(sql, params)


class Database:
    """Reads go to the reader connection; writes are serialised on the writer connection."""

    def __init__(self, writer: aiosqlite.Connection, reader: BatchReader) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        # Bumped after every commit made through this daemon: caches of what was read
        # (the auth cache) are valid while it is unchanged.
        self.generation = 0
        # Called with each committed event, in order (the event bus): set by the app.
        self.publish: Callable[[Any], None] | None = None

    @classmethod
    async def open(cls, path: Path, migrations: list[Migration] | None = None) -> Database:
        writer = await _connect(path)
        try:
            await apply_migrations(
                writer,
                await asyncio.to_thread(bundled_migrations) if migrations is None else migrations,
            )
            reader = BatchReader(path, PRAGMAS)
            await reader.open()
        except BaseException:
            await writer.close()
            raise
        return cls(writer, reader)

    async def close(self) -> None:
        async with self._write_lock:
            await self._reader.close()
            # A checkpoint folds the WAL into the main file so a clean stop leaves one file.
            await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await self._writer.close()

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self._reader.fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._reader.fetchall(sql, params)

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """BEGIN IMMEDIATE … COMMIT on the one writer; any exception rolls back. The events
        appended inside are published after COMMIT.

        A cancel can land at any await here, and aiosqlite still runs a statement whose
        awaiting task was cancelled: BEGIN, COMMIT and ROLLBACK therefore run to their end
        whatever happens, so the writer always leaves outside a transaction and the change is
        all or nothing."""
        async with self._write_lock:
            tx = Transaction(self._writer)
            try:
                try:
                    await run_to_end(self._writer.execute("BEGIN IMMEDIATE"))
                    yield tx
                except BaseException:
                    if self._writer.in_transaction:
                        await run_to_end(self._writer.execute("ROLLBACK"))
                    raise
                commit = asyncio.ensure_future(self._writer.execute("COMMIT"))
                try:
                    await run_to_end(commit)
                except BaseException:
                    # COMMIT failed, or a cancel came while it ran (it ended, one way or the
                    # other). Publish only if it committed; a failed one may still be open.
                    if commit.done() and not commit.cancelled() and commit.exception() is None:
                        self._published(tx)
                    elif self._writer.in_transaction:
                        await run_to_end(self._writer.execute("ROLLBACK"))
                    raise
                self._published(tx)
            finally:
                self.generation += 1

    def _published(self, tx: Transaction) -> None:
        if self.publish is not None:
            for event in tx.events:
                self.publish(event)

    async def ping(self) -> None:
        await self._reader.fetchall("SELECT 1")


async def apply_migrations(conn: aiosqlite.Connection, migrations: list[Migration]) -> list[int]:
    """Apply the pending migrations, each in its own transaction; return the versions applied."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    rows = await conn.execute_fetchall("SELECT version FROM schema_migrations")
    applied = {row[0] for row in rows}
    known = max((m.version for m in migrations), default=0)
    if applied and max(applied) > known:
        raise MigrationError(
            f"the database is at schema version {max(applied)}, newer than this dployr "
            f"knows ({known}); upgrade dployr or restore a backup"
        )
    done = []
    for migration in migrations:
        if migration.version in applied:
            continue
        try:
            # executescript runs the whole file inside our explicit transaction.
            await conn.executescript(f"BEGIN IMMEDIATE;\n{migration.sql}\n;")
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, now_iso()),
            )
            await conn.execute("COMMIT")
        except sqlite3.Error as err:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise MigrationError(
                f"migration {migration.version:03d}_{migration.name} failed and was rolled "
                f"back: {err}"
            ) from err
        _LOGGER.info("applied migration %03d_%s", migration.version, migration.name)
        done.append(migration.version)
    return done


def backup(source: Path, target: Path) -> None:
    """Copy a live database with SQLite's online backup API (consistent while others write)."""
    tmp = target.with_name(target.name + ".partial")
    # Made 0600 before SQLite writes a byte into it (SQLite keeps the file's mode, and gives
    # its journal the same): the copy is never readable by others, whatever the umask.
    tmp.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    tmp.chmod(0o600)
    tmp.replace(target)
