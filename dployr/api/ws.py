"""GET /api/v1/ws: the event stream over a WebSocket (auth, subscribe with replay, ping)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from dployr.api.openapi import operation, query_param
from dployr.auth.service import Identity
from dployr.errors import (
    AuthenticationRequired,
    DployrError,
    Forbidden,
    InvalidToken,
    RateLimited,
    ValidationError,
)
from dployr.events.feed import EventFeed, EventFilter, FeedDropped, valid_pattern
from dployr.events.sockets import close
from dployr.keys import AUTH, BUS, CONFIG, DB, IDENTITY, SOCKETS
from dployr.store.events import seq_of

_LOGGER = logging.getLogger(__name__)
routes = web.RouteTableDef()

AUTH_SECONDS = 5.0  # for the first message when no ?token= was given
HEARTBEAT = 30.0  # WebSocket-level ping; a peer that does not pong is closed
# The token is checked again after any database write (a logout, a revoked token, a deleted or
# disabled user) within this many seconds, and at least every RECHECK_EVERY (an API token's
# expiry is no write).
RECHECK_POLL = 1.0
RECHECK_EVERY = 60.0
MAX_MESSAGE = 64 * 1024


def error_frame(err: DployrError) -> dict[str, Any]:
    return {"type": "error", **err.body()}


async def _query_identity(
    request: web.Request,
) -> tuple[Identity | None, str, DployrError | None]:
    """The identity, and the header it came from (kept to check it again later)."""
    token = request.query.get("token")
    if token is None:  # perhaps an Authorization header
        return request.get(IDENTITY), request.headers.get("Authorization", ""), None
    header = f"Bearer {token}"
    try:
        identity = await request.app[AUTH].authenticate(header)
    except DployrError as err:
        return None, header, err
    return identity, header, None


@routes.get("/api/v1/ws", allow_head=False)
@operation(
    "Events over a WebSocket (upgrade): authenticate with ?token= or a first message "
    '{"type": "auth", "token"}; then {"type": "subscribe", "events", "since", "all"} and '
    '{"type": "ping"}. Frames: events {id, type, created_at, data}, pong, subscribed, error',
    tag="events",
    responses={101: None, 429: None},
    query=(query_param("token", {"type": "string"}, "an access token or an API token"),),
    public=True,  # the token comes in the query or the first message, not the header
)
async def websocket(request: web.Request) -> web.StreamResponse:
    sockets = request.app[SOCKETS]
    identity, header, failure = await _query_identity(request)
    if identity is not None:
        sockets.check(identity.user.id)  # a 429 before the upgrade
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    with sockets.track(ws, request):
        if identity is None:
            identity, header = await _first_message_auth(request, ws, failure)
        if identity is None:
            return ws
        try:
            sockets.check(identity.user.id)  # again: the first message took a while
        except RateLimited as err:
            await _refuse(request, ws, err)
            return ws
        with sockets.hold(identity.user.id):
            await Session(request, ws, identity, header).run()
    return ws


async def _refuse(request: web.Request, ws: web.WebSocketResponse, err: DployrError) -> None:
    with contextlib.suppress(ConnectionError):
        await ws.send_json(error_frame(err))
    code = WSCloseCode.TRY_AGAIN_LATER if err.status == 429 else WSCloseCode.POLICY_VIOLATION
    await close(ws, request.app[SOCKETS].transport_of(ws), code, err.message)


async def _first_message_auth(
    request: web.Request, ws: web.WebSocketResponse, failure: DployrError | None
) -> tuple[Identity | None, str]:
    """The identity from a first `auth` message and its header; None once an error frame
    was sent."""
    if failure is not None:  # a bad ?token=
        await _refuse(request, ws, failure)
        return None, ""
    err: DployrError
    try:
        msg = await ws.receive(timeout=AUTH_SECONDS)
    except TimeoutError:
        err = AuthenticationRequired(
            f'Send {{"type": "auth", "token": "..."}} within {AUTH_SECONDS:g} s or use ?token='
        )
    else:
        if msg.type != WSMsgType.TEXT:
            return None, ""  # the client went away
        body = _parse(msg.data)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(body, dict) or body.get("type") != "auth":
            err = AuthenticationRequired('The first message must be {"type": "auth", "token"}')
        elif not isinstance(token, str) or not token:
            err = InvalidToken("The auth message needs a token")
        else:
            header = f"Bearer {token}"
            try:
                return await request.app[AUTH].authenticate(header), header
            except DployrError as bad:
                err = bad
    await _refuse(request, ws, err)
    return None, ""


def _parse(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


class Session:
    """One authenticated socket: a reader of control messages and one feed task at a time."""

    def __init__(
        self, request: web.Request, ws: web.WebSocketResponse, identity: Identity, header: str
    ):
        self._app = request.app
        self._ws = ws
        self._identity = identity
        self._header = header
        self._send_lock = asyncio.Lock()
        self._pump: asyncio.Task[None] | None = None

    async def run(self) -> None:
        # Without a subscribe message the client gets all its own events, live.
        self._start(EventFilter(owner_id=self._identity.user.id), None)
        guard = asyncio.create_task(self._guard())
        try:
            async for msg in self._ws:
                if msg.type != WSMsgType.TEXT:
                    await self._send(error_frame(ValidationError("type", "send JSON text frames")))
                    continue
                try:
                    await self._handle(_parse(msg.data))
                except DployrError as err:
                    await self._send(error_frame(err))
        finally:
            guard.cancel()
            await asyncio.gather(guard, return_exceptions=True)
            await self._stop()

    async def _guard(self) -> None:
        """Close the socket once its token is revoked, its user deleted or disabled, or the
        user's role changed (a reconnect then sees what the new role may see)."""
        db, auth, loop = self._app[DB], self._app[AUTH], asyncio.get_running_loop()
        seen, checked = db.generation, loop.time()
        while True:
            await asyncio.sleep(RECHECK_POLL)
            if db.generation == seen and loop.time() - checked < RECHECK_EVERY:
                continue
            seen, checked = db.generation, loop.time()  # before reading: a write meanwhile
            try:
                valid = await auth.still_valid(self._header, self._identity)
            except DployrError:
                continue  # the database is busy or failing: no verdict this time
            if not valid:
                break
        await self._stop()  # no event goes out after this
        err = InvalidToken(
            "The token was revoked, or its user removed or given another role; authenticate again"
        )
        with contextlib.suppress(ConnectionError):
            await self._send(error_frame(err))
        transport = self._app[SOCKETS].transport_of(self._ws)
        await close(self._ws, transport, WSCloseCode.POLICY_VIOLATION, err.message)

    async def _handle(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise ValidationError("type", "a message is a JSON object with a type")
        kind = body.get("type")
        if kind == "ping":
            await self._send({"type": "pong"})
        elif kind == "subscribe":
            await self._subscribe(body)
        elif kind == "auth":
            raise ValidationError("type", "this socket is already authenticated")
        else:
            raise ValidationError("type", "must be subscribe, ping or auth")

    async def _subscribe(self, body: dict[str, Any]) -> None:
        events = body.get("events") or []
        if not isinstance(events, list) or not all(
            isinstance(p, str) and valid_pattern(p) for p in events
        ):
            raise ValidationError("events", "a list of event types or prefixes like 'deployment.*'")
        want_all = body.get("all", False)
        if not isinstance(want_all, bool):
            raise ValidationError("all", "must be a boolean")
        if want_all and not self._identity.user.is_admin:
            raise Forbidden("Only an admin may subscribe to all users' events")
        owner = None if want_all else self._identity.user.id
        since = body.get("since")
        after: int | None = None
        if since is not None:
            if not isinstance(since, str):
                raise ValidationError("since", "must be an event id (evt_…)")
            after = await seq_of(self._app[DB], since, owner)
            if after is None:
                raise ValidationError("since", "no such event among yours")
        await self._stop()
        await self._send({"type": "subscribed", "events": events})
        self._start(EventFilter(tuple(events), owner), after)

    def _start(self, filter_: EventFilter, after: int | None) -> None:
        self._pump = asyncio.create_task(self._forward(filter_, after))

    async def _stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None

    async def _forward(self, filter_: EventFilter, after: int | None) -> None:
        size = self._app[CONFIG].server.ws_queue
        try:
            async with EventFeed(self._app[DB], self._app[BUS], filter_, after, size) as feed:
                sending = asyncio.create_task(self._send_all(feed))
                dropped = asyncio.create_task(feed.dropped.wait())
                try:
                    await asyncio.wait({sending, dropped}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sending.cancel()
                    dropped.cancel()
                    await asyncio.gather(sending, dropped, return_exceptions=True)
                if sending.done() and not sending.cancelled():
                    sending.result()  # a failure other than the drop shows here
                raise FeedDropped()
        except FeedDropped:
            _LOGGER.warning("a WebSocket fell %d events behind and was closed", size)
            await close(
                self._ws,
                self._app[SOCKETS].transport_of(self._ws),
                WSCloseCode.POLICY_VIOLATION,
                f"too slow: fell {size} events behind; reconnect with since",
            )
        except ConnectionError:
            pass  # the client went away mid-send; the reader loop ends too
        except Exception:  # a socket without its feed must not stay open looking healthy
            _LOGGER.exception("a WebSocket's event feed failed")
            transport = self._app[SOCKETS].transport_of(self._ws)
            await close(self._ws, transport, WSCloseCode.INTERNAL_ERROR, "internal error")

    async def _send_all(self, feed: EventFeed) -> None:
        async for event in feed.events():
            await self._send(event.public())

    async def _send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._ws.send_json(frame)
