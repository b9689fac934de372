"""A real app's host alerts reach the persisted event log and an admin's webhook, once."""

from __future__ import annotations

from typing import Any

from dployr.keys import DB, HOST_METRICS
from dployr.store.events import events_after
from tests.webhooks.conftest import Receiver, StartAgent, eventually


async def test_host_alerts_are_events_an_admins_webhook_gets(
    start_agent: StartAgent, receiver: Receiver
) -> None:
    # Any disk in use is over 0.001 %: the threshold is crossed at every sample.
    thresholds = {"cpu_percent": 0, "memory_percent": 0, "disk_percent": 0.001, "samples": 2}
    agent = await start_agent(alerts=thresholds)
    hook = await agent.create_hook(receiver.url, events=["instance.alert"])
    for _ in range(5):
        await agent.client.app[HOST_METRICS].record()
    logged = [e for e in await events_after(agent.client.app[DB], 0, None, 100)
              if e.type == "instance.alert"]  # fmt: skip
    assert len(logged) == 1  # once when crossing, not at every sample
    (alert,) = logged
    assert alert.owner_id is None
    assert alert.data["metric"] == "disk_percent" and alert.data["state"] == "firing"
    assert alert.data["instance_id"] == agent.client.app[HOST_METRICS].instance_id
    assert alert.data["value"] > alert.data["threshold"] == 0.001

    async def delivered() -> Any:
        items = await agent.deliveries(hook["id"])
        return items and items[0]["status"] == "delivered"

    await eventually(delivered)
    (got,) = receiver.requests
    assert got.headers["X-Dployr-Event"] == "instance.alert"
