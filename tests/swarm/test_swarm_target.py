"""The swarm target on a real one-node swarm: releases as a Swarm service updated in place,
health-checked inside the swarm, rolled back by Swarm, scaled, stopped and deleted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.docker.conftest import wait_done
from tests.swarm.conftest import docker

# The greeting is in the release's own run_cmd (env belongs to the service: a rollback runs
# the old release with the env of now).
SERVE = (
    'echo "serving {greeting}"; mkdir -p /www && echo "{greeting} $(hostname)" > /www/index.html '
    '&& exec httpd -f -p "$PORT" -h /www'
)


def image_body(name: str, greeting: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": "image",
        "runtime": "image",
        "image": "busybox:stable",
        "target": "swarm",
        "port": 8080,
        "run_cmd": SERVE.format(greeting=greeting),
        "health_check": {"path": "/", "timeout": 10},
        **extra,
    }


def answers(service_id: str) -> list[str]:
    """What each running task answers, asked inside the task itself (never from the host);
    a task still starting (not healthy yet) is not asked."""
    name = "dployr-" + service_id.replace("_", "-")
    listed = docker(
        "service", "ps", name, "--no-trunc", "--filter", "desired-state=running",
        "--format", "{{.ID}} {{.CurrentState}}",
    ).splitlines()  # fmt: skip
    tasks = [line.split()[0] for line in listed if line.split()[1] == "Running"]
    containers = [
        docker("ps", "-q", "--filter", f"label=com.docker.swarm.task.id={task}") for task in tasks
    ]
    wget = ("/.dployr/busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/")
    return sorted(docker("exec", container, *wget) for container in containers)


async def deploy(client: TestClient, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:  # type: ignore[type-arg]
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    return await wait_done(client, auth, (await resp.json())["id"], limit=240)


@pytest.mark.timeout(600)
async def test_a_release_runs_as_a_swarm_service_and_swarm_rolls_a_failing_one_back(
    swarm: None,
    dclient: TestClient,
    auth: dict[str, str],
    data_dir: Path,  # type: ignore[type-arg]
) -> None:
    first = await deploy(dclient, auth, image_body("sw", "one"))
    assert first["status"] == "live", first["error"]
    service_id = first["service_id"]
    stages = {s["name"]: s["message"] for s in first["stages"]}
    assert "inside the swarm" in stages["health_checking"]
    said = await asyncio.to_thread(answers, service_id)
    assert len(said) == 1 and said[0].startswith("one "), said
    status = await (await dclient.get(f"/api/v1/services/{service_id}/status", headers=auth)).json()
    assert status["status"] == "running", status
    # Logs come from the service's tasks, read or followed.
    logs = await (await dclient.get(f"/api/v1/services/{service_id}/logs", headers=auth)).json()
    assert [line["message"] for line in logs["logs"]] == ["serving one"], logs
    async with dclient.get(
        f"/api/v1/services/{service_id}/logs?follow=true&tail=1", headers=auth
    ) as followed:
        async with asyncio.timeout(20):
            streamed = json.loads(await followed.content.readline())
    assert streamed["message"] == "serving one", streamed

    second = await deploy(dclient, auth, image_body("sw", "two"))
    assert second["status"] == "live", second["error"]
    said = await asyncio.to_thread(answers, service_id)
    assert len(said) == 1 and said[0].startswith("two "), said

    # A release whose check fails: Swarm rolls the update back and the live one keeps serving.
    broken = image_body("sw", "three", health_check={"path": "/missing", "timeout": 3})
    failed = await deploy(dclient, auth, broken)
    assert failed["status"] == "failed"
    assert "swarm update failed" in failed["error"], failed["error"]
    assert "rolled back" in failed["error"] or "unhealthy" in failed["error"], failed["error"]
    await asyncio.sleep(2)
    said = await asyncio.to_thread(answers, service_id)
    assert said and all(s.startswith("two ") for s in said), said

    # rollback to release 1: a Swarm update to its image and env
    resp = await dclient.post(f"/api/v1/deployments/{first['id']}/rollback", headers=auth)
    assert resp.status == 202, await resp.text()
    back = await wait_done(dclient, auth, (await resp.json())["id"], limit=240)
    assert back["status"] == "live", back["error"]
    said = await asyncio.to_thread(answers, service_id)
    assert len(said) == 1 and said[0].startswith("one "), said

    resp = await dclient.delete(f"/api/v1/services/{service_id}", headers=auth)
    assert resp.status in (200, 202, 204), await resp.text()
    name = "dployr-" + service_id.replace("_", "-")
    listed = await asyncio.to_thread(docker, "service", "ls", "-q", "--filter", f"name={name}")
    assert listed == ""


async def status_of(client: TestClient, auth: dict[str, str], service_id: str) -> dict[str, Any]:  # type: ignore[type-arg]
    resp = await client.get(f"/api/v1/services/{service_id}/status", headers=auth)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def wait_replicas(
    client: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    service_id: str,
    running: int,
    limit: float = 60,
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        status = await status_of(client, auth, service_id)
        if status["replicas"] == {"running": running, "desired": running}:
            return status
        assert asyncio.get_running_loop().time() < deadline, status
        await asyncio.sleep(0.5)


@pytest.mark.timeout(300)
async def test_replicas_scale_and_a_killed_task_comes_back(
    swarm: None,
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    data_dir: Path,
) -> None:
    live = await deploy(dclient, auth, image_body("reps", "many", replicas=2))
    assert live["status"] == "live", live["error"]
    service_id = live["service_id"]
    status = await wait_replicas(dclient, auth, service_id, 2)
    assert status["status"] == "running"
    said = await asyncio.to_thread(answers, service_id)
    assert len(said) == 2 and len({s.split()[1] for s in said}) == 2, said  # two tasks

    for count in (3, 2):
        resp = await dclient.post(
            f"/api/v1/services/{service_id}/scale", json={"replicas": count}, headers=auth
        )
        assert resp.status == 200, await resp.text()
        await wait_replicas(dclient, auth, service_id, count)
    service = await (await dclient.get(f"/api/v1/services/{service_id}", headers=auth)).json()
    assert service["replicas"] == 2

    # A redeploy without `replicas` keeps the service's scale.
    again = await deploy(dclient, auth, image_body("reps", "again"))
    assert again["status"] == "live", again["error"]
    said = await asyncio.to_thread(answers, service_id)
    assert len(said) == 2 and all(s.startswith("again ") for s in said), said

    # A task killed by hand: Swarm replaces it, and the status counts it.
    name = "dployr-" + service_id.replace("_", "-")
    task = (await asyncio.to_thread(
        docker, "service", "ps", name, "-q", "--no-trunc", "--filter", "desired-state=running"
    )).split()[0]  # fmt: skip
    container = await asyncio.to_thread(
        docker, "ps", "-q", "--filter", f"label=com.docker.swarm.task.id={task}"
    )
    await asyncio.to_thread(docker, "kill", container)
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        status = await status_of(dclient, auth, service_id)
        if status["restarts"] >= 1 and status["replicas"]["running"] == 2:
            break
        assert asyncio.get_running_loop().time() < deadline, status
        await asyncio.sleep(0.5)
    said = await asyncio.to_thread(answers, service_id)
    assert len(said) == 2 and all(s.startswith("again ") for s in said), said
