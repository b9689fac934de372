"""GET /api/v1/ws with aiohttp's client against the real app and a real SQLite file. Events come
from real API calls (a deployment against an engine socket where nothing listens makes its
service; routes make `route.created`/`route.deleted`); the slow-consumer test appends big events
straight to the log, through the same commit-then-publish path, to fill socket buffers fast."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from dployr.api import ws as ws_api
from dployr.app import create_app
from dployr.keys import DB, SOCKETS
from dployr.store.events import Event, append, append_event, events_after
from tests.conftest import bearer, login, make_config, register, user_headers

Client = TestClient  # type: ignore[type-arg]
Socket = aiohttp.ClientWebSocketResponse
WS = "/api/v1/ws"
WAIT = 30.0  # seconds: a frame that does not come by then is a failure (never a timing claim)


async def _client(aiohttp_client: Any, tmp_path: Path, **server: Any) -> Client:
    config = make_config(
        tmp_path / "data",
        runtime={"default_target": "docker", "docker_host": f"unix://{tmp_path}/no.sock"},
        server={"data_dir": str(tmp_path / "data"), **server},
    )
    return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]


@pytest.fixture
async def app(aiohttp_client: Any, tmp_path: Path) -> Client:
    client = await _client(aiohttp_client, tmp_path)
    await register(client)
    return client


async def _admin(client: Client) -> tuple[dict[str, str], str]:
    token = (await login(client))["access_token"]
    return bearer(token), token


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def _service(client: Client, auth: dict[str, str], name: str) -> str:
    body = {"name": name, "source": "image", "image": "alpine:3", "port": 8080}
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["service_id"])


async def _route(client: Client, auth: dict[str, str], service_id: str, domain: str) -> str:
    body = {"domain": domain, "service_id": service_id}
    resp = await client.post("/api/v1/proxy/routes", json=body, headers=auth)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def _connect(client: Client, token: str | None = None) -> Socket:
    path = WS if token is None else f"{WS}?token={token}"
    return await client.ws_connect(path)


async def _frame(ws: Socket) -> dict[str, Any]:
    msg = await ws.receive(timeout=WAIT)
    assert msg.type == WSMsgType.TEXT, (msg.type, msg.data)
    return dict(msg.json())


async def _control(ws: Socket) -> dict[str, Any]:
    """The next control frame (pong, subscribed, error), past events still streaming."""
    while "id" in (frame := await _frame(ws)):
        pass
    return frame


async def _subscribe(ws: Socket, **body: Any) -> dict[str, Any]:
    await ws.send_json({"type": "subscribe", **body})
    answer = await _control(ws)
    assert answer["type"] == "subscribed", answer
    return answer


async def _events(client: Client, prefix: str = "", after: int = 0) -> list[Event]:
    return [
        e
        for e in await events_after(client.app[DB], after, None, 10_000)
        if e.type.startswith(prefix)
    ]


async def _closed(ws: Socket) -> aiohttp.WSMessage:
    """The next non-text message (the close), skipping nothing else."""
    msg = await ws.receive(timeout=WAIT)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), msg
    return msg


async def test_query_token_then_events_are_the_event_objects(app: Client):
    admin, token = await _admin(app)
    ws = await _connect(app, token)
    answer = await _subscribe(ws, events=["route.*"])
    assert answer == {"type": "subscribed", "events": ["route.*"]}
    sid = await _service(app, admin, "web")
    rid = await _route(app, admin, sid, "a.example.com")
    frame = await _frame(ws)
    [logged] = await _events(app, "route.")
    assert frame == logged.public()
    assert set(frame) == {"id", "type", "created_at", "data"}
    assert frame["type"] == "route.created" and frame["data"]["route_id"] == rid
    await ws.close()


async def test_first_message_auth_with_an_api_token_and_ping(app: Client):
    admin, _ = await _admin(app)
    resp = await app.post("/api/v1/tokens", json={"name": "ci"}, headers=admin)
    api_token = (await resp.json())["token"]
    ws = await _connect(app)
    await ws.send_json({"type": "auth", "token": api_token})
    await ws.send_json({"type": "ping"})
    assert await _frame(ws) == {"type": "pong"}
    # Without a subscribe message the socket streams all the user's events.
    sid = await _service(app, admin, "web")
    frame = await _frame(ws)
    assert frame["type"] == "deployment.created" and frame["data"]["service_id"] == sid
    # The deployment's later events may still be streaming: the control frames come among them.
    await ws.send_json({"type": "auth", "token": api_token})
    again = await _control(ws)
    assert again["type"] == "error" and again["error"]["code"] == "validation_error"
    await ws.send_str("not json")
    bad = await _control(ws)
    assert bad["error"]["details"]["field"] == "type"
    await ws.close()


@pytest.mark.parametrize("how", ["query", "message", "not-auth", "silence"])
async def test_bad_or_missing_auth_gets_an_error_frame_then_a_close(
    app: Client, how: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(ws_api, "AUTH_SECONDS", 0.2)
    ws = await _connect(app, "dpl_nope" if how == "query" else None)
    if how == "message":
        await ws.send_json({"type": "auth", "token": "eyJ.bad.jwt"})
    elif how == "not-auth":
        await ws.send_json({"type": "subscribe"})
    frame = await _frame(ws)
    expected = "invalid_token" if how in ("query", "message") else "authentication_required"
    assert frame["type"] == "error" and frame["error"]["code"] == expected, frame
    assert frame["error"]["message"]
    closing = await _closed(ws)
    assert closing.type != WSMsgType.CLOSE or closing.data == 1008


async def test_filters_by_exact_type_and_by_prefix(app: Client):
    admin, token = await _admin(app)
    exact, prefix, everything = [await _connect(app, token) for _ in range(3)]
    await _subscribe(exact, events=["route.deleted"])
    await _subscribe(prefix, events=["route.*"])
    await _subscribe(everything, events=[])
    sid = await _service(app, admin, "web")
    rid = await _route(app, admin, sid, "a.example.com")
    resp = await app.delete(f"/api/v1/proxy/routes/{rid}", headers=admin)
    assert resp.status == 204
    assert (await _frame(exact))["type"] == "route.deleted"
    assert [(await _frame(prefix))["type"] for _ in range(2)] == ["route.created", "route.deleted"]
    assert (await _frame(everything))["type"] == "deployment.created"
    await exact.send_json({"type": "ping"})  # nothing else came before the pong
    assert await _frame(exact) == {"type": "pong"}
    await prefix.send_json({"type": "ping"})
    assert await _frame(prefix) == {"type": "pong"}
    for bad in (["route.*.x"], "route.*", [""], [7], ["Route.created"]):
        await exact.send_json({"type": "subscribe", "events": bad})
        frame = await _frame(exact)
        assert frame["type"] == "error" and frame["error"]["details"]["field"] == "events", bad


async def test_since_replays_then_goes_live_with_no_gap_and_no_duplicate(app: Client):
    admin, token = await _admin(app)
    sid = await _service(app, admin, "web")
    for n in range(3):
        await _route(app, admin, sid, f"r{n}.example.com")
    first = (await _events(app, "route."))[0]
    # A long log to replay (pages of 500), so that API calls land while it is being read.
    owner = first.owner_id
    async with app.app[DB].transaction() as conn:
        for n in range(3000):
            await append(conn, "route.created", owner, {"filler": n})
    ws = await _connect(app, token)

    async def more(count: int, start: int) -> None:
        for n in range(start, start + count):
            await _route(app, admin, sid, f"r{n}.example.com")

    # Routes are made while the socket subscribes and replays: the boundary moves under it.
    maker = asyncio.create_task(more(15, 3))
    await _subscribe(ws, events=["route.created"], since=first.id)
    await maker
    await more(2, 18)
    expected = [e.id for e in await _events(app, "route.", first.seq)]
    assert len(expected) == 3019
    got = [(await _frame(ws))["id"] for _ in expected]
    assert got == expected
    await ws.send_json({"type": "ping"})
    assert await _frame(ws) == {"type": "pong"}  # and no repeat came after the last one


async def test_an_unknown_or_foreign_since_is_an_error_frame(app: Client):
    admin, token = await _admin(app)
    other = await user_headers(app, admin, "bob@example.com")
    await _service(app, other, "bobs")
    [foreign] = await _events(app, "deployment.created")
    ws = await _connect(app, _token(other))
    await ws.send_json({"type": "subscribe", "since": "evt_unknown"})
    frame = await _control(ws)
    assert frame["type"] == "error" and frame["error"]["details"]["field"] == "since"
    mine = await _connect(app, token)  # the admin, without `all`: bob's event is not theirs
    await mine.send_json({"type": "subscribe", "since": foreign.id})
    frame = await _control(mine)
    assert frame["type"] == "error" and frame["error"]["details"]["field"] == "since"
    await mine.send_json({"type": "subscribe", "since": foreign.id, "all": True})
    assert (await _control(mine))["type"] == "subscribed"


async def test_users_get_only_their_own_events_and_an_admin_may_ask_for_all(app: Client):
    admin, token = await _admin(app)
    bob = await user_headers(app, admin, "bob@example.com")
    as_bob, as_admin, as_all = [await _connect(app, t) for t in (_token(bob), token, token)]
    await _subscribe(as_bob, events=["deployment.created"])
    await _subscribe(as_admin, events=["deployment.created"])
    await _subscribe(as_all, events=["deployment.created"], all=True)
    bobs = await _service(app, bob, "bobs")
    admins = await _service(app, admin, "admins")
    assert (await _frame(as_bob))["data"]["service_id"] == bobs
    assert (await _frame(as_admin))["data"]["service_id"] == admins
    assert [(await _frame(as_all))["data"]["service_id"] for _ in range(2)] == [bobs, admins]
    for ws in (as_bob, as_admin):
        await ws.send_json({"type": "ping"})
        assert await _frame(ws) == {"type": "pong"}  # nothing of the other's came first
    await as_bob.send_json({"type": "subscribe", "all": True})
    frame = await _control(as_bob)
    assert frame["type"] == "error" and frame["error"]["code"] == "forbidden"


async def test_a_slow_consumer_is_dropped_while_a_fast_one_keeps_receiving(
    aiohttp_client: Any, tmp_path: Path
):
    app = await _client(aiohttp_client, tmp_path, ws_queue=4)
    await register(app)
    _, token = await _admin(app)
    user_id = (await (await app.get("/api/v1/auth/me", headers=bearer(token))).json())["id"]
    fast, slow = await _connect(app, token), await _connect(app, token)
    await _subscribe(fast, events=["service.*"])
    await _subscribe(slow, events=["service.*"])  # and never reads again
    sockets, db, pad = app.app[SOCKETS], app.app[DB], "x" * 65_536
    sent = 0

    async def emit() -> None:
        # One at a time, each once the fast one has it: the fast one is never behind.
        nonlocal sent
        await append_event(db, "service.started", user_id, {"n": sent, "pad": pad})
        assert (await _frame(fast))["data"]["n"] == sent
        sent += 1

    while sockets.open_count(user_id) == 2:
        assert sent < 5000, "the slow consumer was never dropped"
        await emit()
    for _ in range(5):  # and the fast one still gets what comes after the drop
        await emit()
    # The slow one's socket ends (closed with 1008, or cut off when it read nothing at all).
    async with asyncio.timeout(WAIT):
        while (msg := await slow.receive()).type == WSMsgType.TEXT:
            pass
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR), msg
    assert msg.type != WSMsgType.CLOSE or msg.data == 1008


async def test_at_most_n_sockets_per_user(aiohttp_client: Any, tmp_path: Path):
    app = await _client(aiohttp_client, tmp_path, ws_per_user=2)
    await register(app)
    admin, token = await _admin(app)
    bob = await user_headers(app, admin, "bob@example.com")
    first, second = await _connect(app, token), await _connect(app, token)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await _connect(app, token)
    assert refused.value.status == 429
    resp = await app.get(f"{WS}?token={token}")  # the refusal has the error shape
    assert resp.status == 429 and (await resp.json())["error"]["code"] == "rate_limited"
    assert resp.headers["Retry-After"]
    by_message = await _connect(app)
    await by_message.send_json({"type": "auth", "token": token})
    frame = await _frame(by_message)
    assert frame["type"] == "error" and frame["error"]["code"] == "rate_limited"
    await _closed(by_message)
    other = await _connect(app, _token(bob))  # another user's count is their own
    await other.send_json({"type": "ping"})
    assert await _frame(other) == {"type": "pong"}
    await first.close()
    async with asyncio.timeout(WAIT):
        while app.app[SOCKETS].open_count((await login(app))["user"]["id"]) >= 2:
            await asyncio.sleep(0.05)
    third = await _connect(app, token)
    await third.send_json({"type": "ping"})
    assert await _frame(third) == {"type": "pong"}
    await second.close()


async def test_a_feed_that_fails_closes_its_socket_with_1011(
    app: Client, monkeypatch: pytest.MonkeyPatch
):
    async def broken(self: object) -> Any:
        raise RuntimeError("the log is unreadable")
        yield  # an async generator, like the real one

    _, token = await _admin(app)
    monkeypatch.setattr(ws_api.EventFeed, "events", broken)
    ws = await _connect(app, token)
    closing = await _closed(ws)
    assert closing.type == WSMsgType.CLOSE and closing.data == 1011


@pytest.mark.parametrize("how", ["logout", "api-token", "user-deleted"])
async def test_a_revoked_token_or_a_deleted_user_closes_the_open_socket(app: Client, how: str):
    admin, admin_token = await _admin(app)
    other = await user_headers(app, admin, "other@example.com")
    token = _token(other)
    if how == "api-token":
        resp = await app.post("/api/v1/tokens", json={"name": "ci"}, headers=other)
        made = await resp.json()
        token = made["token"]
    ws = await _connect(app, token)
    kept = await _connect(app, admin_token)  # another user's socket stays open
    await ws.send_json({"type": "ping"})
    assert await _frame(ws) == {"type": "pong"}

    if how == "logout":
        resp = await app.post("/api/v1/auth/logout", headers=other)
    elif how == "api-token":
        resp = await app.delete(f"/api/v1/tokens/{made['id']}", headers=other)
    else:
        resp = await app.delete("/api/v1/users/me", headers=other)
    assert resp.status == 204, await resp.text()

    frame = await _control(ws)
    assert frame["type"] == "error" and frame["error"]["code"] == "invalid_token", frame
    closing = await _closed(ws)
    assert closing.type != WSMsgType.CLOSE or closing.data == 1008
    await kept.send_json({"type": "ping"})
    assert await _control(kept) == {"type": "pong"}
    await kept.close()


async def test_an_admin_made_a_user_loses_the_open_all_users_feed(app: Client):
    admin, _ = await _admin(app)
    other = await user_headers(app, admin, "other@example.com")
    other_id = (await (await app.get("/api/v1/auth/me", headers=other)).json())["id"]
    resp = await app.patch(f"/api/v1/users/{other_id}", json={"role": "admin"}, headers=admin)
    assert resp.status == 200, await resp.text()
    ws = await _connect(app, _token(other))
    await ws.send_json({"type": "subscribe", "all": True})
    assert (await _control(ws))["type"] == "subscribed"

    resp = await app.patch(f"/api/v1/users/{other_id}", json={"role": "user"}, headers=admin)
    assert resp.status == 200, await resp.text()
    frame = await _control(ws)
    assert frame["type"] == "error" and frame["error"]["code"] == "invalid_token", frame
    closing = await _closed(ws)
    assert closing.type != WSMsgType.CLOSE or closing.data == 1008
