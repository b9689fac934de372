"""A `dployr serve` process stopped with a WebSocket open: the socket gets a 1001 close and the
daemon exits at once, not after the shutdown timeout."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from tests.integration.conftest import Daemon

pytestmark = pytest.mark.integration


async def test_sigterm_closes_open_websockets_with_going_away(daemon: Daemon) -> None:
    await asyncio.to_thread(daemon.start, 15)
    token = await asyncio.to_thread(daemon.admin_token)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{daemon.url}/api/v1/ws?token={token}")
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json(timeout=30)) == {"type": "pong"}
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        msg = await ws.receive(timeout=30)
        assert msg.type == aiohttp.WSMsgType.CLOSE, msg
        assert msg.data == aiohttp.WSCloseCode.GOING_AWAY and msg.extra == "the daemon is stopping"
        await ws.close()
    assert await asyncio.to_thread(daemon.process.wait, 30) == 0
