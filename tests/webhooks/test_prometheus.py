"""GET /metrics counts webhook deliveries by result, after real deliveries to loopback."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.webhooks.conftest import Agent, Receiver, StartAgent, eventually


async def _scrape(agent: Agent) -> dict[str, dict[str, float]]:
    resp = await agent.client.get("/metrics")
    assert resp.status == 200, await resp.text()
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            if sample.name.endswith("_total") and "result" in sample.labels:
                found.setdefault(sample.name, {})[sample.labels["result"]] = sample.value
    return found


async def test_deliveries_and_attempts_by_result(
    start_agent: StartAgent, receiver: Receiver
) -> None:
    agent = await start_agent(retry_schedule=[1])
    receiver.script = [503]  # one failed attempt, then the retry is delivered
    hook = await agent.create_hook(receiver.url, events=["deployment.succeeded"])
    await agent.event("deployment.succeeded")

    async def delivered() -> Any:
        items = await agent.deliveries(hook["id"])
        return items and items[0]["status"] == "delivered"

    await eventually(delivered)
    counted = await _scrape(agent)
    assert counted["dployr_webhook_deliveries_total"] == {"delivered": 1}
    assert counted["dployr_webhook_attempts_total"] == {"error": 1, "success": 1}

    # Two more fail once, then a 410 ends one and, with it, the webhook's other pending one.
    receiver.script, receiver.then = [503, 503], 410
    await agent.event("deployment.succeeded")
    await agent.event("deployment.succeeded")

    async def all_ended() -> Any:
        items = await agent.deliveries(hook["id"])
        return len(items) == 3 and all(d["status"] != "pending" for d in items)

    await eventually(all_ended)
    counted = await _scrape(agent)
    assert counted["dployr_webhook_deliveries_total"] == {"delivered": 1, "failed": 2}
    attempts = counted["dployr_webhook_attempts_total"]
    # The second retry is only made when it started before the first one's 410 was recorded.
    assert attempts["success"] == 1 and attempts["error"] in (4, 5)
