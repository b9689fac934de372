"""Per-service metrics from a real container: DockerTarget.usage, the recorder's samples (CPU,
memory, network rates of requests on its published port), the endpoint (owner-checked) and
the service gauges of /metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from dployr.app import create_app
from dployr.keys import DEPLOYER
from tests.conftest import login, register, user_headers
from tests.docker.conftest import STATIC_APP, deploy_config, fetch_text, make_repo
from tests.docker.test_pipeline import deploy, static_body

# Busy, but capped at a fifth of a core (resources.cpus) on a shared machine, and serving.
RATES = ("net_rx_bps", "net_tx_bps")
BURN_AND_SERVE = '(while :; do :; done) & exec httpd -f -p "$PORT" -h /app'


async def metrics_of(client: TestClient, auth: dict[str, str], sid: str) -> Any:  # type: ignore[type-arg]
    """The last minute: raw samples (one a second), step 1."""
    since = int(time.time()) - 60
    resp = await client.get(f"/api/v1/services/{sid}/metrics?from={since}", headers=auth)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_busy_service_is_sampled_served_and_scraped(
    aiohttp_client: Any, docker_engine: None, data_dir: Path, tmp_path: Path
) -> None:
    config = deploy_config(data_dir)
    config = dataclasses.replace(config, metrics=dataclasses.replace(config.metrics, interval=1))
    client = await aiohttp_client(create_app(config))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    body = static_body(
        repo,
        name="burner",
        health_check={"path": "/", "timeout": 10},
        run_cmd=BURN_AND_SERVE,
        resources={"cpus": 0.2},
    )
    live = await deploy(client, auth, body)
    assert live["status"] == "live", live
    sid = live["service_id"]
    service = await (await client.get(f"/api/v1/services/{sid}", headers=auth)).json()

    deadline = time.monotonic() + 60
    while True:
        for _ in range(5):  # traffic through the published loopback port
            assert (await fetch_text(service["host_port"]))[0] == 200
        answer = await metrics_of(client, auth, sid)
        current = answer["current"]
        moved = [p for p in answer["series"] if (p["net_rx_bps"] or 0) + (p["net_tx_bps"] or 0)]
        if current and current["cpu_percent"] > 5 and moved:
            break
        assert time.monotonic() < deadline, answer
        await asyncio.sleep(0.5)
    assert all(p[k] is None or p[k] >= 0 for p in answer["series"] for k in RATES)
    assert current["cpu_percent"] < 60  # the cap holds (a fifth of a core, with slack)
    assert current["memory_bytes"] > 0 and current["restarts"] == 0
    assert answer["service_id"] == sid and answer["step"] == 1
    assert set(answer["series"][0]) == {"timestamp", "cpu_percent", "memory_bytes", "restarts",
                                        *RATES}  # fmt: skip

    other = await user_headers(client, auth, "other@example.com")
    resp = await client.get(f"/api/v1/services/{sid}/metrics", headers=other)
    assert resp.status == 404
    resp = await client.get(f"/api/v1/services/{sid}/metrics?step=0", headers=auth)
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["field"] == "step"

    resp = await client.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
    (cpu,) = families["dployr_service_cpu_percent"].samples
    assert cpu.labels == {"service": "burner", "service_id": sid} and cpu.value > 0
    (memory,) = families["dployr_service_memory_bytes"].samples
    assert memory.value > 0
    (received,) = families["dployr_service_network_receive_bytes_per_second"].samples
    assert received.labels["service_id"] == sid and received.value >= 0

    # usage() leaves out what is gone, and answers for what runs.
    deployer = client.app[DEPLOYER]
    ref = (await (await client.get(f"/api/v1/services/{sid}/status", headers=auth)).json())[
        "container_id"
    ]
    target = deployer.targets.get("docker")
    found = await target.usage([ref, "0" * 64])
    assert list(found) == [ref]
    await asyncio.to_thread(
        subprocess.run, ["docker", "rm", "-f", ref], capture_output=True, check=True
    )
    assert await target.usage([ref]) == {}
