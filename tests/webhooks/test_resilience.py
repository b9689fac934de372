"""Deliveries survive a restart, the guard runs again at send time, and the connection goes to
the address that was checked."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from dployr.webhooks.address import Target
from dployr.webhooks.sender import post
from tests.webhooks.conftest import Receiver, StartAgent, eventually
from tests.webhooks.test_delivery import settled


async def test_a_pending_delivery_resumes_after_a_restart(
    start_agent: StartAgent, receiver: Receiver
) -> None:
    agent = await start_agent(retry_schedule=[2])
    receiver.script = [500]
    hook = await agent.create_hook(receiver.url)
    await agent.event()

    async def first_attempt_failed() -> bool:
        items = await agent.deliveries(hook["id"])
        return bool(items) and items[0]["attempts"] == 1

    await eventually(first_attempt_failed)
    (pending,) = await agent.deliveries(hook["id"])
    assert pending["status"] == "pending" and pending["next_attempt_at"]
    await agent.client.close()

    again = await start_agent(first=False, retry_schedule=[2])
    (delivered,) = await settled(again, hook["id"], "delivered")
    assert delivered["id"] == pending["id"] and delivered["attempts"] == 2
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == {pending["id"]}  # the same delivery id across the restart


def _log_event_offline(db_path: Path, owner_id: str) -> None:
    """An event committed by a daemon that died before its worker read it."""
    with sqlite3.connect(db_path) as db:
        db.execute(
            "INSERT INTO events (id, type, owner_id, created_at, data)"
            " VALUES ('evt_offline', 'service.crashed', ?, '2026-01-01T00:00:00Z', '{}')",
            (owner_id,),
        )


async def test_an_event_the_last_run_never_delivered_is_sent_at_start(
    start_agent: StartAgent, receiver: Receiver, tmp_path: Path
) -> None:
    agent = await start_agent()
    hook = await agent.create_hook(receiver.url)
    await agent.client.close()
    await asyncio.to_thread(_log_event_offline, tmp_path / "data" / "dployr.db", agent.user_id)
    again = await start_agent(first=False)
    (delivered,) = await settled(again, hook["id"], "delivered")
    assert delivered["event_id"] == "evt_offline"


async def test_the_address_is_checked_again_at_send_time(
    start_agent: StartAgent, receiver: Receiver
) -> None:
    agent = await start_agent()  # allow_private: the loopback receiver is accepted
    hook = await agent.create_hook(receiver.url)
    await agent.client.close()
    strict = await start_agent(first=False, allow_private=False, retry_schedule=[])
    await strict.event()
    (refused,) = await settled(strict, hook["id"], "failed")
    assert refused["last_error"] == "address not allowed" and refused["last_status_code"] is None
    assert receiver.requests == []


async def test_the_connection_goes_to_the_checked_address(receiver: Receiver) -> None:
    """A name that no longer resolves (or resolves elsewhere) is never looked up again: the
    request goes to the address the guard checked, with the name in the Host header."""
    port = receiver.server.port
    target = Target(
        f"http://hooks.invalid:{port}/hook", "http", "hooks.invalid", port, ("127.0.0.1",)
    )
    response = await post(target, {"X-Test": "1"}, "{}", 5.0)
    assert response.status_code == 200 and response.excerpt == "r" * 1024
    assert receiver.requests[0].headers["Host"] == f"hooks.invalid:{port}"
