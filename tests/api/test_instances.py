"""/instances: this host as the one instance, its metrics, defaults and bad parameters."""

import time
from datetime import UTC, datetime

import pytest

from dployr.keys import HOST_METRICS


def _ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


async def test_this_host_is_the_one_instance(client, admin):
    assert (await client.get("/api/v1/instances")).status == 401
    resp = await client.get("/api/v1/instances", headers=admin)
    assert resp.status == 200, await resp.text()
    page = await resp.json()
    assert page["total"] == 1 and page["total_pages"] == 1 and page["page"] == 1
    [instance] = page["items"]
    assert set(instance) == {
        "id", "hostname", "os", "kernel", "cpu_count", "memory_total", "disk_total",
        "uptime", "agent_version", "docker_version", "proxy", "status",
    }  # fmt: skip
    assert instance["id"].startswith("agt_") and instance["status"] == "online"
    assert instance["cpu_count"] >= 1 and instance["memory_total"] > 0
    assert instance["disk_total"] > 0 and instance["uptime"] > 0 and instance["proxy"] == "none"
    resp = await client.get(f"/api/v1/instances/{instance['id']}", headers=admin)
    assert resp.status == 200
    assert {**(await resp.json()), "uptime": 0} == {**instance, "uptime": 0}
    resp = await client.get("/api/v1/instances/agt_other", headers=admin)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await client.get("/api/v1/instances/agt_other/metrics", headers=admin)
    assert resp.status == 404


async def test_metrics_defaults_current_and_series(client, admin):
    recorder = client.app[HOST_METRICS]
    await recorder.record()  # a sample now (the scheduled one may not have run yet)
    before = time.time()
    resp = await client.get(f"/api/v1/instances/{recorder.instance_id}/metrics", headers=admin)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    fields = {
        "timestamp", "cpu_percent", "load_1", "load_5", "load_15", "memory_used",
        "memory_percent", "swap_used", "swap_percent", "disk_used", "disk_percent",
        "net_rx_bps", "net_tx_bps", "uptime",
    }  # fmt: skip
    assert set(body["current"]) == fields
    assert body["step"] == 10  # metrics.interval: raw samples, 360 points in an hour
    end = _ts(body["to"])
    assert abs(end - before) < 60 and _ts(body["from"]) == end - 3600
    assert body["series"] and all(set(point) == fields for point in body["series"])
    assert body["current"]["memory_used"] > 0

    resp = await client.get(
        f"/api/v1/instances/{recorder.instance_id}/metrics",
        params={"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"},
        headers=admin,
    )
    body = await resp.json()
    assert resp.status == 200 and body["series"] == [] and body["step"] == 3600


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-01-01T00:00:00"}, "to"),  # no zone
        ({"step": "0"}, "step"),
        ({"step": "ten"}, "step"),
        ({"from": "1800000000", "to": "1700000000"}, "from"),
        ({"from": "1000", "to": "1800000000", "step": "1"}, "step"),  # too many points
    ],
)
async def test_bad_metrics_parameters_are_400_with_the_field(client, admin, params, field):
    recorder = client.app[HOST_METRICS]
    resp = await client.get(
        f"/api/v1/instances/{recorder.instance_id}/metrics", params=params, headers=admin
    )
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "validation_error" and error["details"]["field"] == field
