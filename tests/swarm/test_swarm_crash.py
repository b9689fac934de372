"""The swarm target when the daemon dies (kill -9) or a release is cancelled: Swarm keeps the
service running by itself, and what did not go live is undone (SPEC §9, §15)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.integration.conftest import Daemon
from tests.swarm.conftest import docker
from tests.swarm.test_swarm_target import answers, deploy, image_body

# A release that takes long to answer: its rollout is still in health_checking when we act.
SLOW = (
    'sleep 30; mkdir -p /www && echo "slow $(hostname)" > /www/index.html '
    '&& exec httpd -f -p "$PORT" -h /www'
)


def tasks_of(service_id: str) -> list[str]:
    name = "dployr-" + service_id.replace("_", "-")
    return sorted(docker("service", "ps", name, "-q", "--filter", "desired-state=running").split())


def wait_status(
    daemon: Daemon, token: str, deployment_id: str, wanted: tuple[str, ...]
) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, body = daemon.request("GET", f"/api/v1/deployments/{deployment_id}", token=token)
        assert status == 200, body
        if body["status"] in wanted:
            return dict(body)
        time.sleep(0.2)
    raise AssertionError(f"{deployment_id} never reached {wanted}: {body}")


def wait_answers(service_id: str, greeting: str, count: int) -> list[str]:
    deadline = time.monotonic() + 60
    while True:
        said = answers(service_id)
        if len(said) == count and all(s.startswith(greeting + " ") for s in said):
            return said
        assert time.monotonic() < deadline, said
        time.sleep(0.5)


@pytest.mark.timeout(400)
def test_kill_9_mid_rollout_then_restart_undoes_it_and_swarm_kept_serving(
    swarm: None, deploy_daemon: Daemon
) -> None:
    deploy_daemon.start()
    token = deploy_daemon.admin_token()
    status, created = deploy_daemon.request(
        "POST", "/api/v1/deployments", image_body("crash", "one", replicas=2), token=token
    )
    assert status == 202, created
    live = wait_status(deploy_daemon, token, created["id"], ("live", "failed"))
    assert live["status"] == "live", live["error"]
    service_id = live["service_id"]
    wait_answers(service_id, "one", 2)

    body = image_body("crash", "two", run_cmd=SLOW, health_check={"path": "/", "timeout": 60})
    status, created = deploy_daemon.request("POST", "/api/v1/deployments", body, token=token)
    assert status == 202, created
    wait_status(deploy_daemon, token, created["id"], ("health_checking",))
    deploy_daemon.stop(signal.SIGKILL)
    wait_answers(service_id, "one", 2)  # no daemon: Swarm serves the live release still

    deploy_daemon.start()
    token = deploy_daemon.admin_token()
    failed = wait_status(deploy_daemon, token, created["id"], ("failed",))
    assert "interrupted" in failed["error"]
    # The unfinished update was rolled back: release one's two tasks, nothing of release two.
    wait_answers(service_id, "one", 2)
    status, now = deploy_daemon.request("GET", f"/api/v1/services/{service_id}/status", token=token)
    assert now["replicas"] == {"running": 2, "desired": 2}, now

    # A kill -9 while all is quiet: the restart finds the tasks as Swarm left them.
    name = "dployr-" + service_id.replace("_", "-")
    deadline = time.monotonic() + 60
    while docker("service", "inspect", name, "--format", "{{.UpdateStatus.State}}") != (
        "rollback_completed"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    before = tasks_of(service_id)
    deploy_daemon.stop(signal.SIGKILL)
    deploy_daemon.start()
    token = deploy_daemon.admin_token()
    time.sleep(2)  # reconcile ran (the API answers after it started)
    assert tasks_of(service_id) == before
    status, now = deploy_daemon.request("GET", f"/api/v1/services/{service_id}/status", token=token)
    assert now["status"] == "running" and now["replicas"]["running"] == 2, now


@pytest.mark.timeout(300)
async def test_a_cancel_mid_rollout_rolls_the_service_back(
    swarm: None,
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    data_dir: Path,
) -> None:
    live = await deploy(dclient, auth, image_body("cancel", "one"))
    assert live["status"] == "live", live["error"]
    service_id = live["service_id"]
    body = image_body("cancel", "two", run_cmd=SLOW, health_check={"path": "/", "timeout": 60})
    resp = await dclient.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202
    deployment_id = (await resp.json())["id"]
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        got = await (await dclient.get(f"/api/v1/deployments/{deployment_id}", headers=auth)).json()
        if got["status"] == "health_checking":
            break
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.2)
    resp = await dclient.delete(f"/api/v1/deployments/{deployment_id}", headers=auth)
    assert resp.status == 204, await resp.text()
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        got = await (await dclient.get(f"/api/v1/deployments/{deployment_id}", headers=auth)).json()
        if got["status"] == "cancelled":
            break
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.2)
    # Release one serves again, alone: the cancelled update was rolled back.
    said = await asyncio.to_thread(wait_answers, service_id, "one", 1)
    assert len(said) == 1
    name = "dployr-" + service_id.replace("_", "-")
    labels = await asyncio.to_thread(
        docker, "service", "inspect", name, "--format", "{{json .Spec.Labels}}"
    )
    assert live["id"] in labels
