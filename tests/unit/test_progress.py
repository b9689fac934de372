"""The build reporter and the Logbook end without swallowing their caller's cancel."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dployr.pipeline.logbook import Logbook
from dployr.pipeline.progress import BuildProgress
from dployr.store import deployments
from dployr.store.db import Database
from dployr.tasks import run_to_end


class SlowAttempt:
    """What BuildProgress needs of an Attempt: a log, and an update that takes a while (a
    COMMIT in flight runs to its end)."""

    class log:
        @staticmethod
        def write(line: str) -> None:
            pass

    async def _update(self, changes: dict[str, Any], event: Any) -> None:
        await run_to_end(asyncio.sleep(0.2))


async def test_closing_the_reporter_keeps_a_cancel_of_its_caller():
    reporter = BuildProgress(SlowAttempt())  # type: ignore[arg-type]
    reporter.step(2, 3, "Step 2/3 : RUN make")
    await asyncio.sleep(0.01)  # the reporter is inside its update now

    async def after_the_build() -> str:
        await reporter.close()
        return "went on to the next stage"

    task = asyncio.create_task(after_the_build())
    await asyncio.sleep(0.01)  # waiting in close()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_logbook_writes_its_last_lines_and_keeps_the_cancel(tmp_path, monkeypatch):
    db = await Database.open(tmp_path / "d.db")
    real = deployments.append_log

    async def slow_append_log(*args: Any) -> None:
        # A slow write already under way (a COMMIT runs to its end): the cancel lands then.
        await run_to_end(asyncio.sleep(0.2))
        await real(*args)

    monkeypatch.setattr(deployments, "append_log", slow_append_log)
    try:
        await db._writer.execute("PRAGMA foreign_keys = OFF")  # log rows alone
        entered = asyncio.Event()

        async def with_a_log() -> None:
            async with Logbook(db, "dep_x", [], 0) as book:
                book.write("first")
                await asyncio.sleep(0.01)  # the flusher is writing "first" now
                book.write("last")
                entered.set()

        task = asyncio.create_task(with_a_log())
        await entered.wait()
        await asyncio.sleep(0.05)  # in the Logbook's exit, waiting for its flusher
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        rows = await db.fetchall("SELECT line FROM deployment_logs ORDER BY seq")
        assert [r[0] for r in rows] == ["first", "last"]
    finally:
        await db.close()
