"""health_checking: an HTTP GET answered 2xx/3xx, or a TCP connect, before a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

INTERVAL = 0.05  # an app is usually up within a few tenths of a second


async def wait_healthy(
    host_port: int,
    path: str | None,
    limit: float,
    still_running: Callable[[], Awaitable[bool]],
) -> str | None:
    """None once the instance answers; else why it never did (its exit, or the last answer)."""
    deadline = time.monotonic() + limit
    last = "no answer yet"
    client_timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        while time.monotonic() < deadline:
            try:
                if path is None:
                    _, writer = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", host_port), 5
                    )
                    writer.close()
                    await writer.wait_closed()
                    return None
                async with session.get(
                    f"http://127.0.0.1:{host_port}{path}", allow_redirects=False
                ) as response:
                    if response.status < 400:
                        return None
                    last = f"GET {path} answered {response.status}"
            except (OSError, aiohttp.ClientError, TimeoutError) as err:
                last = f"no answer on port {host_port} ({type(err).__name__})"
            if not await still_running():
                return f"the instance exited before it answered ({last})"
            await asyncio.sleep(INTERVAL)
    return f"not healthy within {limit:g} s: {last}"
