"""Open WebSockets: a per-user cap, and the close every one gets when the daemon stops."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterator

from aiohttp import WSCloseCode, web

from dployr.errors import RateLimited

CLOSE_SECONDS = 2.0  # a peer that does not read its close frame is cut off after this
RETRY_AFTER = 5  # seconds: a slot frees as soon as one of the user's sockets closes


class Sockets:
    """Open WebSockets: a per-user cap, and the list the daemon closes when it stops."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._users: collections.Counter[str] = collections.Counter()
        self._open: dict[web.WebSocketResponse, asyncio.Transport | None] = {}

    def open_count(self, user_id: str) -> int:
        return self._users[user_id]

    def check(self, user_id: str) -> None:
        if self._users[user_id] >= self.per_user:
            raise RateLimited(
                f"You have {self.per_user} WebSockets open, the most a user may; close one "
                "and retry",
                details={"reason": "too many open WebSockets", "limit": self.per_user},
                headers={"Retry-After": str(RETRY_AFTER)},
            )

    @contextlib.contextmanager
    def hold(self, user_id: str) -> Iterator[None]:
        self.check(user_id)
        self._users[user_id] += 1
        try:
            yield
        finally:
            self._users[user_id] -= 1
            if not self._users[user_id]:
                del self._users[user_id]

    @contextlib.contextmanager
    def track(self, ws: web.WebSocketResponse, request: web.Request) -> Iterator[None]:
        self._open[ws] = request.transport
        try:
            yield
        finally:
            self._open.pop(ws, None)

    def transport_of(self, ws: web.WebSocketResponse) -> asyncio.Transport | None:
        return self._open.get(ws)

    @property
    def count(self) -> int:
        return len(self._open)

    async def close_all(self) -> None:
        """At daemon stop: every socket gets a 1001 close, so the stop never waits on one."""
        await asyncio.gather(
            *(
                close(ws, transport, WSCloseCode.GOING_AWAY, "the daemon is stopping")
                for ws, transport in list(self._open.items())
            )
        )


async def close(
    ws: web.WebSocketResponse, transport: asyncio.Transport | None, code: int, reason: str
) -> None:
    """Close with a reason; a peer that reads nothing (its buffers full) is cut off instead:
    a plain transport close would wait to flush what it never reads."""
    try:
        async with asyncio.timeout(CLOSE_SECONDS):
            await ws.close(code=code, message=reason.encode()[:120])
    except (TimeoutError, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # we are cancelled ourselves
        # Else the close was stuck behind unread data (aiohttp shares one drain waiter among
        # writers: a cancelled send cancels the close's wait too).
        if transport is not None:
            transport.abort()
