"""The batched read connection: every read answered, in order, errors to their own caller."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import pytest

from dployr.store.db import PRAGMAS
from dployr.store.reader import MAX_BATCH, BatchReader


async def make(tmp_path) -> BatchReader:
    def create() -> None:
        conn = sqlite3.connect(tmp_path / "r.db")
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
        conn.commit()
        conn.close()

    await asyncio.to_thread(create)
    reader = BatchReader(tmp_path / "r.db", PRAGMAS)
    await reader.open()
    return reader


async def test_many_reads_at_once_each_get_their_own_answer(tmp_path):
    reader = await make(tmp_path)
    try:
        n = MAX_BATCH * 3 + 5
        answers = await asyncio.gather(
            *(reader.fetchall("SELECT x FROM t WHERE x = ?", (i % 10,)) for i in range(n))
        )
        assert [rows[0]["x"] for rows in answers] == [i % 10 for i in range(n)]
    finally:
        await reader.close()


async def test_an_error_goes_to_its_read_only_and_a_cancelled_read_harms_none(tmp_path):
    reader = await make(tmp_path)
    try:
        cancelled = asyncio.ensure_future(reader.fetchall("SELECT COUNT(*) FROM t"))
        bad = asyncio.ensure_future(reader.fetchall("SELECT nope FROM t"))
        good = asyncio.ensure_future(reader.fetchall("SELECT COUNT(*) FROM t"))
        cancelled.cancel()
        with pytest.raises(sqlite3.OperationalError, match="no such column"):
            await bad
        assert (await good)[0][0] == 10
        with contextlib.suppress(asyncio.CancelledError):
            await cancelled
        assert (await reader.fetchall("SELECT 1"))[0][0] == 1
    finally:
        await reader.close()
    with pytest.raises(sqlite3.ProgrammingError):
        await reader.fetchall("SELECT 1")
