"""A process instance's output: size-capped rotating files, read back by tail and since, and
followed from memory while the instance runs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

from dployr.ids import parse_iso
from dployr.runtime.protocol import LogLine

MAX_BYTES = 10 * 1024 * 1024  # per file; like the docker target's json-file driver: 3 x 10 MB
KEEP_FILES = 3
FLUSH_SECONDS = 0.2
FOLLOW_QUEUE = 10_000  # lines a slow follower may lag behind before it misses some
NAME = "output.log"


def stamp() -> str:
    """Now, as the API writes times with milliseconds."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S") + f".{now.microsecond // 1000:03d}Z"


def format_line(line: LogLine) -> str:
    return f"{line.timestamp} {line.stream} {line.message}\n"


def parse_line(text: str) -> LogLine | None:
    timestamp, _, rest = text.rstrip("\n").partition(" ")
    stream, _, message = rest.partition(" ")
    if stream not in ("stdout", "stderr"):
        return None
    return LogLine(timestamp, stream, message)


def files_oldest_first(directory: Path) -> list[Path]:
    return [directory / f"{NAME}.{n}" for n in range(KEEP_FILES - 1, 0, -1)] + [directory / NAME]


def read_lines(directory: Path, tail: int | None, since: str | None) -> list[LogLine]:
    """Blocking: the lines on disk, oldest first: the last `tail` of those at or after `since`."""
    after = parse_iso(since) if since else None
    kept: deque[LogLine] = deque(maxlen=tail)
    for path in files_oldest_first(directory):
        for line in _lines_of(path):
            if after is not None and parse_iso(line.timestamp) < after:
                continue
            kept.append(line)
    return list(kept)


def _lines_of(path: Path) -> Iterator[LogLine]:
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            for text in file:
                if (line := parse_line(text)) is not None:
                    yield line
    except FileNotFoundError:
        return


def append_rotating(directory: Path, text: str) -> None:
    """Blocking: append `text`, rotating first when the file would pass MAX_BYTES."""
    current = directory / NAME
    try:
        size = current.stat().st_size
    except FileNotFoundError:
        size = 0
    if size and size + len(text.encode("utf-8")) > MAX_BYTES:
        files = files_oldest_first(directory)
        for older, newer in itertools.pairwise(files):
            with contextlib.suppress(FileNotFoundError):
                newer.replace(older)  # .1 → .2, output.log → .1; the oldest is overwritten
    with current.open("a", encoding="utf-8") as file:
        file.write(text)


class OutputLog:
    """One instance's log: lines buffered in memory and written by one flusher task (never on
    the event loop), and handed to followers as they come."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._buffer: list[str] = []
        self._followers: set[asyncio.Queue[LogLine | None]] = set()
        self._lock = asyncio.Lock()  # one writer; a reader that subscribes holds it too
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._flusher())

    def write(self, stream: str, message: str) -> None:
        line = LogLine(stamp(), stream, message)
        self._buffer.append(format_line(line))
        for queue in self._followers:
            with contextlib.suppress(asyncio.QueueFull):  # a follower that lags misses lines
                queue.put_nowait(line)
        self._wake.set()

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            await asyncio.sleep(FLUSH_SECONDS)  # lines that come meanwhile go in one write

    async def flush(self) -> None:
        async with self._lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        if self._buffer:
            text, self._buffer = "".join(self._buffer), []
            await asyncio.to_thread(append_rotating, self.directory, text)

    async def close(self) -> None:
        """Write what is buffered and end every follower."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()
        for queue in self._followers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    async def read(self, tail: int | None, since: str | None) -> list[LogLine]:
        async with self._lock:
            await self._flush_locked()
            return await asyncio.to_thread(read_lines, self.directory, tail, since)

    async def follow(self, tail: int | None, since: str | None) -> AsyncIterator[LogLine]:
        """The lines on disk, then each new one until the instance stops. The follower is
        subscribed before the file is read, and no flush runs until the read is done: no line
        is missed or given twice."""
        queue: asyncio.Queue[LogLine | None] = asyncio.Queue(FOLLOW_QUEUE)
        async with self._lock:
            self._followers.add(queue)
            await self._flush_locked()
            lines = await asyncio.to_thread(read_lines, self.directory, tail, since)
        try:
            for line in lines:
                yield line
            while (new := await queue.get()) is not None:
                yield new
        finally:
            self._followers.discard(queue)
