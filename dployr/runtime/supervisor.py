"""One supervised app: a child of the daemon under the keeper (its own process group), restarted
with backoff when it exits, its output to an OutputLog."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dployr.ids import now_iso
from dployr.runtime.host_build import kill_group
from dployr.runtime.keeper import kept
from dployr.runtime.proclog import OutputLog
from dployr.runtime.protocol import InstanceStatus, RuntimeFailure

_LOGGER = logging.getLogger(__name__)
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STEADY_SECONDS = 30.0  # a run this long resets the backoff
LINE_LIMIT = 64 * 1024  # a longer line is cut into pieces of this size


@dataclass(frozen=True)
class Launch:
    """What to run: the command (a validated single line, run as `sh -c`), where, with what."""

    command: str
    cwd: Path
    env: Mapping[str, str]


class Supervised:
    def __init__(self, ref: str, launch: Launch, log: OutputLog) -> None:
        self.ref = ref
        self.launch = launch
        self.log = log
        self.restarts = 0
        self.started_at: str | None = None
        self.pid: int | None = None
        self.last_exit: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()

    async def start(self) -> None:
        """Start the first run (a failure to start at all is the caller's to report)."""
        await self.log.open()
        try:
            await self._spawn()
        except BaseException:
            await self.log.close()
            raise
        self._task = asyncio.create_task(self._supervise(), name=f"supervise {self.ref}")

    async def _spawn(self) -> asyncio.subprocess.Process:
        try:
            process = await asyncio.create_subprocess_exec(
                *kept(["sh", "-c", self.launch.command]),
                cwd=self.launch.cwd,
                env=dict(self.launch.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own group: a stop reaches all it started
                limit=LINE_LIMIT,
            )
        except OSError as err:
            raise RuntimeFailure(f"could not start {self.ref}: {err}") from err
        self._process, self.pid, self.started_at = process, process.pid, now_iso()
        return process

    async def _supervise(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            process = self._process
            assert process is not None
            began = time.monotonic()
            status = await self._run_to_exit(process)
            kill_group(process.pid, signal.SIGKILL)  # what it left behind goes with it
            if self._stop_requested.is_set():
                return
            self.restarts += 1
            self.last_exit = f"exit code {status}" if status >= 0 else f"signal {-status}"
            if time.monotonic() - began >= STEADY_SECONDS:
                backoff = BACKOFF_FIRST
            _LOGGER.info("%s exited (%s); restarting in %g s", self.ref, self.last_exit, backoff)
            self.log.write("stderr", f"dployr: the app exited ({self.last_exit}); restarting")
            self._process = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._stop_requested.wait()
            backoff = min(backoff * 2, BACKOFF_MAX)
            started: asyncio.subprocess.Process | None = None
            while not self._stop_requested.is_set():
                try:
                    started = await self._spawn()
                    break
                except RuntimeFailure as err:
                    self.log.write("stderr", f"dployr: {err}")
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(backoff):
                            await self._stop_requested.wait()
            if self._stop_requested.is_set():  # asked while it slept or started: that run ends
                if started is not None:
                    kill_group(started.pid, signal.SIGKILL)
                    await started.wait()
                return

    async def _run_to_exit(self, process: asyncio.subprocess.Process) -> int:
        assert process.stdout is not None and process.stderr is not None
        pumps = [
            asyncio.create_task(self._pump(process.stdout, "stdout")),
            asyncio.create_task(self._pump(process.stderr, "stderr")),
        ]
        try:
            status = await process.wait()
            # A background job of the app may hold the pipes: kill the group, then read on.
            kill_group(process.pid, signal.SIGKILL)
            await asyncio.wait(pumps, timeout=1)
            return status
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        while True:
            try:
                raw = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as end:
                if end.partial:
                    self.log.write(name, end.partial.decode("utf-8", "replace"))
                return
            except asyncio.LimitOverrunError as long:
                raw = await stream.readexactly(long.consumed)
            self.log.write(name, raw.decode("utf-8", "replace").rstrip("\r\n"))

    def status(self) -> InstanceStatus:
        if self._process is not None and self._process.returncode is None:
            return InstanceStatus("running", self.ref, self.started_at, self.restarts, None)
        return InstanceStatus("crashed", self.ref, self.started_at, self.restarts, self.last_exit)

    async def stop(self, grace: float) -> None:
        """TERM to the group, KILL after `grace`; the log is written out and its followers end.
        Supervision ends by itself (no cancel: a run being started is never left behind)."""
        self._stop_requested.set()
        process = self._process
        if process is not None and process.returncode is None:
            kill_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await asyncio.shield(process.wait())
            kill_group(process.pid, signal.SIGKILL)
        if self._task is not None:
            await asyncio.shield(self._task)
        await self.log.close()
