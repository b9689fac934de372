"""Managed databases' backups (SPEC §14): one row each; its file is under the backup dir."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from dployr.errors import NotFound
from dployr.ids import new_id, now_iso
from dployr.store import events
from dployr.store.databases import Change
from dployr.store.db import Database, Row
from dployr.store.paging import Page, PageRequest

_BACKUP_COLUMNS = (
    "id, database_id, status, trigger, file, size_bytes, error, created_at, finished_at"
)


@dataclass(frozen=True)
class Backup:
    id: str
    database_id: str
    status: str  # running | succeeded | failed
    trigger: str  # api | schedule
    file: str | None
    size_bytes: int | None
    error: str | None
    created_at: str
    finished_at: str | None

    @classmethod
    def from_row(cls, row: Row) -> Backup:
        return cls(*row)


async def insert_backup(db: Database, database_id: str, trigger: str) -> Backup:
    backup_id, now = new_id("bak"), now_iso()
    try:
        async with db.transaction() as conn:
            await conn.execute(
                f"INSERT INTO database_backups ({_BACKUP_COLUMNS}) VALUES"
                " (?, ?, 'running', ?, NULL, NULL, NULL, ?, NULL)",
                (backup_id, database_id, trigger, now),
            )
    except sqlite3.IntegrityError:  # the database was deleted meanwhile
        raise NotFound("No such database") from None
    return Backup(backup_id, database_id, "running", trigger, None, None, None, now, None)


async def finish_backup(
    db: Database,
    backup_id: str,
    owner_id: str,
    outcome: dict[str, Any],
    event: Change,
) -> Backup | None:
    """A backup's end (`status`, and `file`/`size_bytes` or `error`) and its event, in one
    transaction. None: the row is gone (its database was deleted meanwhile)."""
    assert set(outcome) <= {"status", "file", "size_bytes", "error"}, outcome
    async with db.transaction() as conn:
        cursor = await conn.execute(
            f"UPDATE database_backups SET {', '.join(f'{c} = ?' for c in outcome)},"
            " finished_at = ? WHERE id = ? AND status = 'running'",
            [*outcome.values(), now_iso(), backup_id],
        )
        if cursor.rowcount == 0:
            return None
        await events.append(conn, event[0], owner_id, event[1])
    return await get_backup(db, backup_id)


async def get_backup(db: Database, backup_id: str) -> Backup | None:
    row = await db.fetchone(
        f"SELECT {_BACKUP_COLUMNS} FROM database_backups WHERE id = ?", (backup_id,)
    )
    return Backup.from_row(row) if row else None


async def list_backups(db: Database, database_id: str, paging: PageRequest) -> Page[Backup]:
    total = await db.fetchval(
        "SELECT COUNT(*) FROM database_backups WHERE database_id = ?", (database_id,)
    )
    rows = await db.fetchall(
        f"SELECT {_BACKUP_COLUMNS} FROM database_backups WHERE database_id = ?"
        " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
        (database_id, paging.per_page, paging.offset),
    )
    return Page([Backup.from_row(r) for r in rows], int(total), paging)


async def succeeded_backups(
    db: Database, database_id: str, status: str = "succeeded"
) -> list[Backup]:
    """The database's good (or `status`) backups, newest first (retention keeps the first
    keep_backups)."""
    rows = await db.fetchall(
        f"SELECT {_BACKUP_COLUMNS} FROM database_backups"
        " WHERE database_id = ? AND status = ? ORDER BY created_at DESC, rowid DESC",
        (database_id, status),
    )
    return [Backup.from_row(r) for r in rows]


async def running_backups(db: Database) -> list[Backup]:
    rows = await db.fetchall(
        f"SELECT {_BACKUP_COLUMNS} FROM database_backups WHERE status = 'running'"
    )
    return [Backup.from_row(r) for r in rows]


async def delete_backups(db: Database, backup_ids: list[str]) -> None:
    if backup_ids:
        async with db.transaction() as conn:
            await conn.executemany(
                "DELETE FROM database_backups WHERE id = ?", [(i,) for i in backup_ids]
            )
