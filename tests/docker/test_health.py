"""Health checks prove the app answered; workers (no port) go live once they stay up."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.docker.conftest import STATIC_APP, commit, fetch_text, make_repo
from tests.docker.test_pipeline import deploy, static_body

TCP = {"path": None, "timeout": 20}


def inspect(ref: str) -> dict[str, Any]:
    out = subprocess.run(["docker", "inspect", ref], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout)[0])


async def service_of(client: TestClient, auth: dict[str, str], sid: str) -> dict[str, Any]:  # type: ignore[type-arg]
    resp = await client.get(f"/api/v1/services/{sid}", headers=auth)
    assert resp.status == 200
    return dict(await resp.json())


async def test_tcp_check_needs_the_app_to_answer(
    dclient: TestClient, auth: dict[str, str], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    good = await deploy(dclient, auth, static_body(repo, health_check=TCP))
    assert good["status"] == "live", good
    port = (await service_of(dclient, auth, good["service_id"]))["host_port"]
    assert await fetch_text(port) == (200, "hello v1\n")

    # The engine's forwarder accepts on the published port, but nothing listens inside.
    await asyncio.to_thread(commit, repo, {"index.html": "hello v2\n"}, "v2")
    mute = static_body(repo, run_cmd="exec sleep 600", health_check={"path": None, "timeout": 3})
    failed = await deploy(dclient, auth, mute)
    assert failed["status"] == "failed", failed
    assert "nothing listens" in failed["error"], failed["error"]
    service = await service_of(dclient, auth, good["service_id"])
    assert service["current_deployment_id"] == good["id"]
    assert service["host_port"] == port
    assert await fetch_text(port) == (200, "hello v1\n")


async def test_worker_goes_live_without_a_port_and_fails_when_it_exits(
    dclient: TestClient, auth: dict[str, str], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    settle = {"path": "/", "timeout": 2}  # shorter than 5 s: the settle window is 2 s
    body = static_body(repo, name="jobs", port=None, health_check=settle)

    resp = await dclient.post(
        "/api/v1/deployments", json={**body, "domain": "jobs.localhost"}, headers=auth
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["field"] == "domain"

    worker = await deploy(dclient, auth, {**body, "run_cmd": "echo working; exec sleep 600"})
    assert worker["status"] == "live", worker
    assert worker["port"] is None and worker["host_port"] is None
    service = await service_of(dclient, auth, worker["service_id"])
    assert service["status"] == "running" and service["host_port"] is None
    attrs = await asyncio.to_thread(inspect, service["container_id"])
    assert not any(e.startswith("PORT=") for e in attrs["Config"]["Env"])
    assert not attrs["HostConfig"]["PortBindings"]
    resp = await dclient.post(f"/api/v1/services/{worker['service_id']}/restart", headers=auth)
    restarted = await resp.json()
    assert resp.status == 200 and restarted["status"] == "running", restarted
    assert restarted["host_port"] is None and restarted["container_id"] != attrs["Id"]

    crash = {**body, "run_cmd": "echo out of jobs >&2; exit 3"}
    failed = await deploy(dclient, auth, crash)
    assert failed["status"] == "failed", failed
    assert "exit code 3" in failed["error"] and "out of jobs" in failed["error"], failed["error"]
    service = await service_of(dclient, auth, worker["service_id"])
    assert service["current_deployment_id"] == worker["id"]
    assert service["status"] == "running"
