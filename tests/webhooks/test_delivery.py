"""Deliveries to real receivers on loopback: signatures checked as a receiver would, retries,
the delivery log, redelivery, ping, 410, redirects not followed, ownership."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook as StandardWebhook

from dployr.keys import DB
from tests.conftest import user_headers
from tests.webhooks.conftest import Agent, Receiver, StartAgent, eventually


def verify_dployr_signature(secret: str, received_headers: dict[str, str], body: bytes) -> None:
    """What a receiver does with X-Dployr-Signature: t=<unix>,v1=<hex>."""
    parts = dict(p.split("=", 1) for p in received_headers["X-Dployr-Signature"].split(","))
    expected = hmac.new(
        secret.encode("utf-8"), parts["t"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"])


async def settled(agent: Agent, hook_id: str, status: str) -> Any:
    async def check() -> Any:
        items = await agent.deliveries(hook_id)
        return items if items and all(d["status"] == status for d in items) else None

    return await eventually(check)


async def test_retries_until_delivered_with_verifiable_signatures(
    start_agent: StartAgent, receiver: Receiver
) -> None:
    agent = await start_agent()
    receiver.script = [500, 503]  # the first two attempts fail
    hook = await agent.create_hook(receiver.url, events=["deployment.succeeded"])
    await agent.event("deployment.failed")  # not wanted by this webhook
    event = await agent.event("deployment.succeeded")
    (delivery,) = await settled(agent, hook["id"], "delivered")
    assert delivery["attempts"] == 3 and delivery["last_status_code"] == 200
    assert delivery["event_id"] == event.id and delivery["event_type"] == "deployment.succeeded"
    assert delivery["delivered_at"] and delivery["next_attempt_at"] is None
    assert len(receiver.requests) == 3
    for got in receiver.requests:
        headers = {k.lower(): v for k, v in got.headers.items()}
        # Standard Webhooks, verified by its own library with the whsec_ secret.
        assert StandardWebhook(hook["secret"]).verify(got.body, headers) == event.public()
        verify_dployr_signature(hook["secret"], got.headers, got.body)
        assert got.headers["webhook-id"] == got.headers["X-Dployr-Delivery"] == delivery["id"]
        assert got.headers["X-Dployr-Event"] == "deployment.succeeded"
        assert got.headers["User-Agent"].startswith("dployr/")
        assert json.loads(got.body) == event.public()


async def test_a_given_secret_signs_with_its_bytes(
    start_agent: StartAgent, receiver: Receiver
) -> None:
    agent = await start_agent()
    secret = "a-plain-secret-of-32-bytes-long!"
    hook = await agent.create_hook(receiver.url, secret=secret)
    await agent.event()
    await settled(agent, hook["id"], "delivered")
    (got,) = receiver.requests
    headers = {k.lower(): v for k, v in got.headers.items()}
    assert StandardWebhook(secret.encode("utf-8")).verify(got.body, headers)
    verify_dployr_signature(secret, got.headers, got.body)


async def test_gives_up_after_the_schedule_then_redelivers(
    start_agent: StartAgent, receiver: Receiver
) -> None:
    agent = await start_agent(retry_schedule=[1])
    receiver.then = 500
    hook = await agent.create_hook(receiver.url)
    await agent.event()
    (failed,) = await settled(agent, hook["id"], "failed")
    assert failed["attempts"] == 2 and failed["last_status_code"] == 500  # 1 + len(schedule)
    assert "500" in failed["last_error"] and len(failed["last_response"]) == 1024  # capped
    receiver.then = 204
    resp = await agent.client.post(
        f"/api/v1/webhooks/{hook['id']}/deliveries/{failed['id']}/redeliver",
        headers=agent.headers,
    )
    assert resp.status == 202
    again = await resp.json()
    assert again["id"] != failed["id"] and again["event_id"] == failed["event_id"]

    async def redelivered() -> Any:
        items = {d["id"]: d for d in await agent.deliveries(hook["id"])}
        return items[again["id"]]["status"] == "delivered" and items

    items = await eventually(redelivered)
    assert items[failed["id"]]["status"] == "failed"
    assert receiver.requests[-1].body == receiver.requests[0].body  # the same event, byte for byte
    missing = f"/api/v1/webhooks/{hook['id']}/deliveries/dlv_nope/redeliver"
    assert (await agent.client.post(missing, headers=agent.headers)).status == 404


async def test_ping(start_agent: StartAgent, receiver: Receiver) -> None:
    agent = await start_agent()
    hook = await agent.create_hook(receiver.url, events=["route.created"])
    resp = await agent.client.post(f"/api/v1/webhooks/{hook['id']}/ping", headers=agent.headers)
    assert resp.status == 202 and (await resp.json())["event_type"] == "ping"
    await settled(agent, hook["id"], "delivered")
    body = json.loads(receiver.requests[0].body)
    assert body["type"] == "ping" and body["data"] == {"webhook_id": hook["id"]}


async def test_410_disables_the_webhook(start_agent: StartAgent, receiver: Receiver) -> None:
    agent = await start_agent()
    receiver.then = 410
    hook = await agent.create_hook(receiver.url)
    await agent.event()
    (gone,) = await settled(agent, hook["id"], "failed")
    assert gone["attempts"] == 1 and gone["last_status_code"] == 410
    shown = await (
        await agent.client.get(f"/api/v1/webhooks/{hook['id']}", headers=agent.headers)
    ).json()
    assert shown["active"] is False
    await agent.event()  # an inactive webhook gets no new deliveries
    await agent.event()
    receiver.then = 200
    ping = await agent.client.post(f"/api/v1/webhooks/{hook['id']}/ping", headers=agent.headers)
    assert ping.status == 202  # kicks the worker: the log is read, nothing is sent
    await eventually(lambda: _cursor_caught_up(agent))
    assert len(await agent.deliveries(hook["id"])) == 2  # the 410 and the pending ping
    assert len(receiver.requests) == 1


async def _cursor_caught_up(agent: Agent) -> bool:
    db = agent.client.app[DB]
    cursor = await db.fetchval("SELECT seq FROM webhook_cursor")
    return bool(cursor == await db.fetchval("SELECT MAX(seq) FROM events"))


async def test_a_redirect_is_not_followed(
    start_agent: StartAgent, receiver: Receiver, aiohttp_server: Any
) -> None:
    hits: list[str] = []

    async def target(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", target)
    other = await aiohttp_server(app, host="127.0.0.1")
    agent = await start_agent(retry_schedule=[])
    receiver.then = 302
    receiver.extra_headers = {"Location": f"http://127.0.0.1:{other.port}/stolen"}
    hook = await agent.create_hook(receiver.url)
    await agent.event()
    (delivery,) = await settled(agent, hook["id"], "failed")
    assert delivery["last_status_code"] == 302 and hits == []


async def test_a_user_gets_only_their_own_events(
    start_agent: StartAgent, receiver: Receiver
) -> None:
    agent = await start_agent()
    bob = Agent(
        agent.client, await user_headers(agent.client, agent.headers, "bob@example.com"), ""
    )
    bobs = await bob.create_hook(receiver.url)
    admins = await agent.create_hook(receiver.url)
    await agent.event()  # the admin's
    await agent.event("instance.alert", owner=None)  # no one's: the admin's webhooks get it
    await settled(agent, admins["id"], "delivered")
    assert len(await agent.deliveries(admins["id"])) == 2
    assert await bob.deliveries(bobs["id"]) == []
