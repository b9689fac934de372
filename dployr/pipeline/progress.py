"""A build's progress: its lines to the log, and `Step i/n` to the deployment's percent."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dployr.pipeline.attempt import Attempt

_STEP = re.compile(r"^Step (\d+)/(\d+) :")
BUILD_BAND = (20, 75)  # where building sits on the 0-100 scale (attempt.PROGRESS)


class BuildProgress:
    """Build lines go to the log at once; `Step i/n` moves the percent, reported as
    deployment.progress events by one task so they stay in order and never block the build."""

    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt
        self._percent = BUILD_BAND[0]
        self._reported = BUILD_BAND[0]
        self._step = ""
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._report())

    def on_line(self, line: str) -> None:
        self._attempt.log.write(line)
        match = _STEP.match(line)
        if match:
            done, total = int(match.group(1)), int(match.group(2))
            low, high = BUILD_BAND
            self._percent = low + (high - low) * (done - 1) // max(total, 1)
            self._step = line
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
