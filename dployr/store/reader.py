"""The read connection: one thread that takes every read queued while it worked, in one go.

aiosqlite pays a thread hop per statement (a wake-up of its thread, and one of the event loop
for the answer). Reads are most of what the API does, and under load many wait at once: this
thread takes all of them, runs them in order, and hands the answers back with one wake-up."""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Params = Sequence[Any] | dict[str, Any]
_Read = tuple[asyncio.Future[list[sqlite3.Row]], str, Params]
_Answer = tuple[asyncio.Future[list[sqlite3.Row]], list[sqlite3.Row] | None, BaseException | None]
_CLOSE = None
MAX_BATCH = 64  # answers go back after at most this many reads: a long batch delays none long


class BatchReader:
    def __init__(self, path: Path, pragmas: Sequence[str]) -> None:
        self._path = path
        self._pragmas = pragmas
        self._queue: queue.SimpleQueue[_Read | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(opened,), name="dployr-reader", daemon=True
        )
        self._thread.start()
        await opened

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        assert self._loop is not None, "open() first"
        if self._closed:
            raise sqlite3.ProgrammingError("the database is closed")
        answer: asyncio.Future[list[sqlite3.Row]] = self._loop.create_future()
        self._queue.put_nowait((answer, sql, params))  # never blocks: an unbounded queue
        return await answer

    async def close(self) -> None:
        if self._thread is not None and not self._closed:
            self._closed = True
            self._queue.put_nowait(_CLOSE)
            await asyncio.to_thread(self._thread.join)

    def _run(self, opened: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            for pragma in self._pragmas:
                conn.execute(pragma)
        except BaseException as err:
            loop.call_soon_threadsafe(_fail, opened, err)
            return
        loop.call_soon_threadsafe(_succeed, opened)
        try:
            while True:
                first = self._queue.get()
                batch = [first]
                while first is not _CLOSE and len(batch) < MAX_BATCH and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                answers: list[_Answer] = []
                for read in batch:
                    if read is _CLOSE:
                        loop.call_soon_threadsafe(_answer_all, answers)
                        return
                    future, sql, params = read
                    try:
                        answers.append((future, conn.execute(sql, params).fetchall(), None))
                    except BaseException as err:
                        answers.append((future, None, err))
                loop.call_soon_threadsafe(_answer_all, answers)
        finally:
            conn.close()


def _answer_all(answers: list[_Answer]) -> None:
    for future, rows, error in answers:
        if future.done():  # its reader was cancelled
            continue
        if error is not None:
            future.set_exception(error)
        else:
            assert rows is not None
            future.set_result(rows)


def _succeed(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(future: asyncio.Future[None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
