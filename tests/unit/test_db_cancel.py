"""A cancel at any await of a write transaction: the writer ends outside a transaction, the
change is all or nothing, and its events are published exactly when it committed."""

import asyncio
import contextlib
from typing import Any

import pytest

from dployr.pipeline.logbook import Logbook
from dployr.store import deployments, events
from dployr.store.db import Database, load_migrations

STATEMENTS = 4  # BEGIN, two INSERTs, COMMIT


async def open_db(path: Any) -> Database:
    return await Database.open(path, load_migrations([("001_t.sql", "CREATE TABLE t (x);")]))


def cancel_at_statement(db: Database, number: int, task_box: list[asyncio.Task[Any]]) -> None:
    """Cancel the writer's task while its `number`-th statement is running in aiosqlite's
    thread (aiosqlite still runs a statement whose awaiting task was cancelled)."""
    original = db._writer.execute
    calls = 0

    def execute(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == number:
            asyncio.get_running_loop().call_soon(task_box[0].cancel)
        return original(*args, **kwargs)

    db._writer.execute = execute  # type: ignore[method-assign]


async def write_two(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO t VALUES (1)")
        conn.events.append("one")
        await conn.execute("INSERT INTO t VALUES (2)")
        conn.events.append("two")


@pytest.mark.parametrize("number", range(1, STATEMENTS + 1))
async def test_cancel_at_each_statement_leaves_the_writer_usable(tmp_path, number):
    db = await open_db(tmp_path / "d.db")
    published: list[str] = []
    db.publish = published.append
    try:
        box: list[asyncio.Task[Any]] = []
        cancel_at_statement(db, number, box)
        box.append(asyncio.create_task(write_two(db)))
        with contextlib.suppress(asyncio.CancelledError):
            await box[0]
        del db._writer.execute  # the connection's own method again

        assert not db._writer.in_transaction
        rows = sorted(r[0] for r in await db.fetchall("SELECT x FROM t"))
        assert rows in ([], [1, 2]), rows  # all or nothing
        # Published exactly when committed (a cancel during COMMIT may land after it did).
        assert published == (["one", "two"] if rows else [])
        # The one writer still writes.
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (3)")
        assert await db.fetchval("SELECT COUNT(*) FROM t WHERE x = 3") == 1
    finally:
        await db.close()


async def test_cancel_at_the_first_await_of_a_new_transaction(tmp_path):
    db = await open_db(tmp_path / "d.db")
    try:
        for _ in range(20):
            task = asyncio.create_task(write_two(db))
            await asyncio.sleep(0)  # the task is now awaiting BEGIN IMMEDIATE
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (3)")
        assert not db._writer.in_transaction
        count = await db.fetchval("SELECT COUNT(*) FROM t")
        assert count % 2 == 1  # pairs of rows, or none, plus the one
    finally:
        await db.close()


async def test_cancels_that_keep_coming_still_end_the_transaction(tmp_path):
    db = await open_db(tmp_path / "d.db")
    try:
        for delay in range(30):
            task = asyncio.create_task(write_two(db))
            for _ in range(delay):
                await asyncio.sleep(0)
            for _ in range(3):  # a cancel storm on the same task
                task.cancel()
                await asyncio.sleep(0)
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert not db._writer.in_transaction
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (3)")
    finally:
        await db.close()


async def test_events_are_published_after_commit_only(tmp_path):
    db = await Database.open(tmp_path / "d.db")
    seen: list[tuple[str, bool]] = []

    def publish(event: Any) -> None:
        # When an event is published, its row is already committed (the reader sees it).
        seen.append((event.type, db._writer.in_transaction))

    db.publish = publish
    try:
        await events.append_event(db, "service.started", None, {})  # type: ignore[arg-type]
        with contextlib.suppress(RuntimeError):
            async with db.transaction() as conn:
                await events.append(conn, "deployment.failed", None, {})
                raise RuntimeError("the change failed")
        assert seen == [("service.started", False)]
    finally:
        await db.close()


async def test_a_cancelled_flush_loses_no_log_lines(tmp_path):
    """The Logbook keeps a batch until it is written: a flush cancelled mid-write is redone."""
    db = await Database.open(tmp_path / "d.db")
    try:
        # Log rows without their deployment rows: this test is about the Logbook alone.
        await db._writer.execute("PRAGMA foreign_keys = OFF")
        for attempt in range(1, 6):
            deployment_id = f"dep_{attempt}"
            book = Logbook(db, deployment_id, [], 0)
            for n in range(50):
                book.write(f"line {n}")
            task = asyncio.create_task(book.flush())
            for _ in range(attempt):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await book.flush()  # what the Logbook's exit does
            lines = await deployments.read_log(db, deployment_id, 0, 1000)
            assert [line for _, _, line in lines] == [f"line {n}" for n in range(50)]
    finally:
        await db.close()
