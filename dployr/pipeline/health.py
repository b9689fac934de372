"""health_checking: proof that the app itself answered (or, for a worker, stayed up) in time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import aiohttp

from dployr.runtime.protocol import InstanceStatus, Target
from dployr.runtime.swarm import SwarmTarget

INTERVAL = 0.05  # an app is usually up within a few tenths of a second
PROBE_LIMIT = 5.0  # one probe never waits longer than this (nor past the deadline)
# Docker's port forwarder (docker-proxy) accepts every connection on a published port and, when
# nothing listens inside, closes it within a millisecond (measured on engine 20.10). A connection
# that is still open after HOLD seconds, or that carries bytes, was accepted by the app itself.
HOLD = 0.2
WORKER_SETTLE = 5.0  # a worker is live once it has stayed up this long (SPEC §13)
WORKER_POLL = 0.1
UP = ("running", "starting")


async def wait_healthy(
    host_port: int,
    path: str | None,
    limit: float,
    still_running: Callable[[], Awaitable[bool]],
) -> str | None:
    """None once the app answers (HTTP 2xx/3xx on `path`, else a held TCP connection); else why
    it never did (its exit, or the last answer)."""
    deadline = time.monotonic() + limit
    last = "no answer yet"
    # A fresh connection per probe: each answer is the app's answer now, not a pooled socket's.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        while (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(min(left, PROBE_LIMIT)):
                    if path is None:
                        problem = await _tcp_probe(host_port)
                    else:
                        problem = await _http_probe(session, host_port, path)
                if problem is None:
                    return None
                last = problem
            except (OSError, aiohttp.ClientError, TimeoutError) as err:
                last = f"no answer on port {host_port} ({type(err).__name__})"
            if not await still_running():
                return f"the instance exited before it answered ({last})"
            await asyncio.sleep(INTERVAL)
    return f"not healthy within {limit:g} s: {last}"


async def _http_probe(session: aiohttp.ClientSession, host_port: int, path: str) -> str | None:
    # An HTTP status line can only come from the app: the forwarder sends no bytes of its own.
    async with session.get(f"http://127.0.0.1:{host_port}{path}", allow_redirects=False) as resp:
        return None if resp.status < 400 else f"GET {path} answered {resp.status}"


async def _tcp_probe(host_port: int) -> str | None:
    reader, writer = await asyncio.open_connection("127.0.0.1", host_port)
    try:
        try:
            async with asyncio.timeout(HOLD):
                data = await reader.read(1)
        except TimeoutError:
            return None  # still open: the app holds the connection
        if data:
            return None  # the app spoke first (a banner)
        return f"port {host_port} was closed at once: nothing listens on it inside the instance"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def wait_settled(
    settle: float, status: Callable[[], Awaitable[InstanceStatus]]
) -> str | None:
    """None once a fresh worker has stayed up for `settle` s; else how it exited. A restart
    counts as an exit: the engine restarts a crashed container at once, and its exit code shows
    only while it waits to restart, so keep looking for that moment until the window closes."""
    deadline = time.monotonic() + settle
    restarts = 0
    while True:
        now = await status()
        if now.status not in UP:
            return now.health or now.status
        restarts = now.restarts
        if time.monotonic() >= deadline:
            return f"restarted {restarts} times" if restarts else None
        await asyncio.sleep(min(WORKER_POLL, max(deadline - time.monotonic(), 0)))


def still_fresh(target: Target, ref: str) -> Callable[[], Awaitable[bool]]:
    """Whether a new instance still runs as started: a restart means it exited (the engine
    brings a crashed container back at once)."""

    async def check() -> bool:
        status = await target.status(ref)
        return status.status in UP and status.restarts == 0

    return check


async def instance_ready(
    target: Target, ref: str, host_port: int | None, path: str | None, limit: float
) -> str | None:
    """None once a new instance is healthy: its app answered, or a worker stayed up; on
    the swarm target, once every task of it passed its health check inside the swarm."""
    if isinstance(target, SwarmTarget):
        return await target.rollout(ref, limit)
    if host_port is None:
        return await wait_settled(min(WORKER_SETTLE, limit), lambda: target.status(ref))
    return await wait_healthy(host_port, path, limit, still_fresh(target, ref))
