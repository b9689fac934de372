"""The SQLite layer: PRAGMAs, transactions, migrations and their failure path, backup."""

import asyncio
import sqlite3

import pytest

from dployr.store.db import Database, MigrationError, backup, bundled_migrations, load_migrations


def query(path, *statements):
    """Run statements on a plain sqlite3 connection (call it in a thread)."""
    conn = sqlite3.connect(path)
    try:
        return [conn.execute(sql).fetchall() for sql in statements]
    finally:
        conn.close()


async def test_pragmas_and_bundled_migrations(tmp_path):
    db = await Database.open(tmp_path / "d.db")
    try:
        assert await db.fetchval("PRAGMA journal_mode") == "wal"
        assert await db.fetchval("PRAGMA synchronous") == 2  # FULL
        assert await db.fetchval("PRAGMA foreign_keys") == 1
        assert await db.fetchval("PRAGMA busy_timeout") == 5000
        versions = [r[0] for r in await db.fetchall("SELECT version FROM schema_migrations")]
        bundled = await asyncio.to_thread(bundled_migrations)
        assert versions == [m.version for m in bundled]
    finally:
        await db.close()


async def test_transaction_rolls_back_on_error(tmp_path):
    db = await Database.open(
        tmp_path / "d.db", load_migrations([("001_t.sql", "CREATE TABLE t (x);")])
    )
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO t VALUES (1)")
                raise RuntimeError("boom")
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (2)")
        assert [r[0] for r in await db.fetchall("SELECT x FROM t")] == [2]
    finally:
        await db.close()


async def test_failing_migration_rolls_back_and_refuses(tmp_path):
    path = tmp_path / "d.db"
    good = ("001_a.sql", "CREATE TABLE a (x);")
    bad = ("002_b.sql", "CREATE TABLE b (x);\nINSERT INTO a VALUES (1);\nTHIS IS NOT SQL;")
    with pytest.raises(MigrationError, match="002_b failed and was rolled back"):
        await Database.open(path, load_migrations([good, bad]))
    tables, rows, versions = await asyncio.to_thread(
        query,
        path,
        "SELECT name FROM sqlite_master WHERE type='table'",
        "SELECT COUNT(*) FROM a",
        "SELECT version FROM schema_migrations",
    )
    assert ("b",) not in tables and ("a",) in tables
    assert rows == [(0,)]
    assert versions == [(1,)]
    # Fixed, it applies on the next start.
    fixed = ("002_b.sql", "CREATE TABLE b (x);")
    db = await Database.open(path, load_migrations([good, fixed]))
    await db.close()


async def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "d.db"
    db = await Database.open(path, load_migrations([("001_a.sql", "CREATE TABLE a (x);")]))
    await db.close()
    with pytest.raises(MigrationError, match="newer than this dployr"):
        await Database.open(path, load_migrations([]))


def test_duplicate_migration_numbers_are_refused():
    with pytest.raises(MigrationError, match="duplicate"):
        load_migrations([("001_a.sql", ""), ("001_b.sql", "")])


async def test_backup_is_a_consistent_copy(tmp_path):
    db = await Database.open(
        tmp_path / "d.db", load_migrations([("001_t.sql", "CREATE TABLE t (x);")])
    )
    try:
        async with db.transaction() as conn:
            await conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
        target = tmp_path / "copy.db"
        await asyncio.to_thread(backup, tmp_path / "d.db", target)
    finally:
        await db.close()
    check, count = await asyncio.to_thread(
        query, target, "PRAGMA integrity_check", "SELECT COUNT(*) FROM t"
    )
    assert check == [("ok",)] and count == [(100,)]
    assert (await asyncio.to_thread(target.stat)).st_mode & 0o777 == 0o600
