"""GET /metrics: Prometheus text parsed back by prometheus-client; who may read it."""

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from dployr.app import create_app
from dployr.keys import BUS, HOST_METRICS
from tests.conftest import bearer, login, make_config, register


def parse(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


async def test_host_gauges_and_requests_by_route_template(client, admin):
    await client.app[HOST_METRICS].record()
    missing = await client.get("/api/v1/projects/prj_nosuchthing", headers=admin)
    assert missing.status == 404
    assert (await client.get("/no/such/path")).status == 404
    async with client.app[BUS].subscribe():  # a subscriber that falls behind is dropped
        for _ in range(1001):
            client.app[BUS].publish(object())  # type: ignore[arg-type]
    resp = await client.get("/metrics")  # the test client is loopback: no token needed
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert "X-RateLimit-Limit" not in resp.headers  # never rate-limited
    families = parse(await resp.text())
    memory = families["dployr_host_memory_used_bytes"].samples[0]
    assert memory.value > 0
    for name in (
        "dployr_host_cpu_percent",
        "dployr_host_load1",
        "dployr_host_disk_percent",
        "dployr_host_network_receive_bytes_per_second",
        "dployr_host_uptime_seconds",
    ):
        assert len(families[name].samples) == 1, name
    requests = {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for s in families["dployr_http_requests"].samples
        if s.name == "dployr_http_requests_total"
    }
    assert requests[("/api/v1/projects/{id}", "GET", "404")] == 1
    assert requests[("(unmatched)", "GET", "404")] == 1
    assert not any("prj_nosuchthing" in route for route, _, _ in requests)
    dropped = families["dployr_event_bus_dropped_subscribers"].samples
    assert [s.value for s in dropped if s.name.endswith("_total")] == [1]


async def test_through_a_trusted_proxy_a_remote_client_needs_a_token(aiohttp_client, tmp_path):
    """With proxy.api_domain the local proxy is trusted: what counts is the client it names."""
    config = make_config(tmp_path / "data", proxy={"backend": "none", "api_domain": "api.test"})
    client = await aiohttp_client(create_app(config))
    await register(client)
    token = (await login(client))["access_token"]
    remote = {"X-Forwarded-For": "203.0.113.9"}
    resp = await client.get("/metrics", headers=remote)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "authentication_required"
    # A remote client claiming loopback: the proxy appends who really called.
    spoofed = {"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}
    assert (await client.get("/metrics", headers=spoofed)).status == 401
    resp = await client.get("/metrics", headers={**remote, "Authorization": "Bearer nope"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_token"
    resp = await client.get("/metrics", headers={**remote, **bearer(token)})
    assert resp.status == 200 and "dployr_http_requests_total" in await resp.text()
    # The proxy speaking for a loopback client (or nobody): loopback, no token.
    assert (await client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})).status == 200
    assert (await client.get("/metrics")).status == 200


async def test_prometheus_off_is_404(aiohttp_client, tmp_path):
    on = await aiohttp_client(create_app(make_config(tmp_path / "on")))
    assert (await on.get("/metrics")).status == 200
    config = make_config(tmp_path / "off", metrics={"prometheus": False})
    client = await aiohttp_client(create_app(config))
    resp = await client.get("/metrics")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
