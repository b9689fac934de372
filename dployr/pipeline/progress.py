"""A build's progress: its lines to the log, and the target's steps to the deployment's percent."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dployr.pipeline.attempt import Attempt

BUILD_BAND = (20, 75)  # where building sits on the 0-100 scale (attempt.PROGRESS)


class BuildProgress:
    """The pipeline's BuildOutput. Build lines go to the log at once; the target's steps move the
    percent, reported as deployment.progress events by one task so they stay in order and never
    block the build."""

    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt
        self._percent = BUILD_BAND[0]
        self._reported = BUILD_BAND[0]
        self._step = ""
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._report())

    def line(self, text: str) -> None:
        self._attempt.log.write(text)

    def step(self, done: int, total: int, what: str) -> None:
        low, high = BUILD_BAND
        self._percent = low + (high - low) * (max(done, 1) - 1) // max(total, 1)
        self._step = what
        self._changed.set()

    async def _report(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self._percent != self._reported:
                self._reported = self._percent
                await self._attempt._update(
                    {"progress": self._percent},
                    ("deployment.progress", self._step, "building"),
                )

    async def close(self) -> None:
        self._task.cancel()
        # gather, not suppress(CancelledError): a cancel of the caller must go on.
        await asyncio.gather(self._task, return_exceptions=True)
