"""A bounded HTTP/1.1 load loop for the zero-downtime tests and bench/switch.py: GET requests
through a proxy over keep-alive and new connections, every answer and failure recorded.

Its own small client (asyncio streams), so that it knows what aiohttp does not tell: whether a
failed request went out on a reused keep-alive connection and whether any byte came back. Like
browsers, curl and Go's client (RFC 9112 §9.3.1), a GET that fails on a REUSED connection before
any byte of an answer arrived is sent again once on a new connection: the server closed an idle
keep-alive connection as the request crossed it. Such retries are counted apart; every other
failure (a refused or reset new connection, a non-200, a cut answer) is a failed request."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field

MAX_REQUESTS = 200_000  # bounds (ENVIRONMENT.md: every request loop is bounded)
MAX_SECONDS = 600.0


@dataclass
class Sample:
    started: float  # monotonic
    seconds: float
    status: int  # 0: failed without an answer
    body: str
    error: str = ""


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    retried: int = 0  # GETs resent after a reused connection closed under them (see above)

    @property
    def sent(self) -> int:
        return len(self.samples)

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200]

    def bodies(self) -> Counter[str]:
        return Counter(s.body for s in self.samples if s.status == 200)


class _Closed(Exception):
    """The connection ended before any byte of an answer arrived."""


class Connection:
    def __init__(self, port: int, host: str) -> None:
        self.port, self.host = port, host
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0  # requests answered on this connection

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None
        self.used = 0

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        body = b""
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            body += await self.reader.readexactly(size)
            await self.reader.readexactly(2)  # the chunk's CRLF
        while await self.reader.readline() not in (b"\r\n", b""):  # trailers
            pass
        return body

    async def get(self, path: str, keepalive: bool) -> tuple[int, str]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        header = "keep-alive" if keepalive else "close"
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: {header}\r\n\r\n".encode()
        )
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise _Closed
        status = int(status_line.split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        closing = not keepalive or headers.get("connection") == "close"
        if headers.get("transfer-encoding") == "chunked":
            body = await self._chunks()
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:
            body = await self.reader.read()
            closing = True
        self.used += 1
        if closing:
            await self.close()
        return status, body.decode("utf-8", "replace")


async def request(conn: Connection, path: str, keepalive: bool, result: LoadResult) -> Sample:
    started = time.monotonic()
    reused = conn.used > 0
    try:
        try:
            status, body = await conn.get(path, keepalive)
        except (_Closed, ConnectionResetError, BrokenPipeError):
            await conn.close()
            if not reused:
                raise
            result.retried += 1
            status, body = await conn.get(path, keepalive)
        sample = Sample(started, time.monotonic() - started, status, body.strip())
    except (OSError, _Closed, asyncio.IncompleteReadError, ValueError, IndexError) as err:
        await conn.close()
        sample = Sample(started, time.monotonic() - started, 0, "", f"{type(err).__name__}: {err}")
    result.samples.append(sample)
    return sample


async def loop(
    port: int, host: str, stop: asyncio.Event, result: LoadResult, *, keepalive: bool
) -> None:
    """GET / until `stop` is set (or the bounds are reached)."""
    conn = Connection(port, host)
    deadline = time.monotonic() + MAX_SECONDS
    try:
        while not stop.is_set() and result.sent < MAX_REQUESTS and time.monotonic() < deadline:
            await request(conn, "/", keepalive, result)
            await asyncio.sleep(0.005)  # a steady stream, not a flood: the proxy does the work
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def under_load(port: int, host: str, connections: int = 4):  # type: ignore[no-untyped-def]
    """Half the loops keep their connection alive, half open a new one per request."""
    stop, result = asyncio.Event(), LoadResult()
    loops = [
        asyncio.create_task(loop(port, host, stop, result, keepalive=i % 2 == 0))
        for i in range(connections)
    ]
    try:
        yield result
    finally:
        stop.set()
        await asyncio.gather(*loops)
