"""A swarm service's metrics: the usage of its tasks on this node, summed (SPEC §15: instance
metrics stay per host)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from dployr.app import create_app
from dployr.keys import DEPLOYER
from tests.conftest import login, register
from tests.docker.conftest import deploy_config
from tests.docker.test_service_metrics import metrics_of
from tests.swarm.conftest import docker
from tests.swarm.test_swarm_target import deploy, image_body

BURN_AND_SERVE = (
    '(nice -n 19 sh -c "while :; do :; done") & mkdir -p /www && echo up > /www/index.html'
    ' && exec httpd -f -p "$PORT" -h /www'
)


@pytest.mark.timeout(300)
async def test_the_tasks_of_a_swarm_service_are_sampled_together(
    swarm: None, docker_engine: None, aiohttp_client: Any, data_dir: Path
) -> None:
    config = deploy_config(data_dir)
    config = dataclasses.replace(config, metrics=dataclasses.replace(config.metrics, interval=1))
    client = await aiohttp_client(create_app(config))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    body = image_body("burn", "x", replicas=2, run_cmd=BURN_AND_SERVE, resources={"cpus": 0.2})
    live = await deploy(client, auth, body)
    assert live["status"] == "live", live["error"]
    sid = live["service_id"]
    deadline = time.monotonic() + 60
    while True:
        answer = await metrics_of(client, auth, sid)
        current = answer["current"]
        if current and current["cpu_percent"] > 0 and current["memory_bytes"] > 0:
            break
        assert time.monotonic() < deadline, answer
        await asyncio.sleep(0.5)
    # What is sampled is both tasks' usage, summed: the same as the two containers' own.
    targets = client.app[DEPLOYER].targets
    status = await (await client.get(f"/api/v1/services/{sid}/status", headers=auth)).json()
    name = "dployr-" + sid.replace("_", "-")
    containers = (
        await asyncio.to_thread(
            docker,
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            f"label=com.docker.swarm.service.name={name}",
        )
    ).split()
    assert len(containers) == 2, containers
    summed = (await targets.get("swarm").usage([status["container_id"]]))[status["container_id"]]
    each = await targets.get("docker").usage(containers)
    memory = [usage.memory_bytes for usage in each.values()]
    assert summed.memory_bytes > max(memory), (summed, each)
    assert abs(summed.memory_bytes - sum(memory)) < 0.2 * sum(memory), (summed, each)
