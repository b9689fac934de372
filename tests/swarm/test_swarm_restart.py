"""Restarts of a swarm service (env ?apply=true, restart): a rolling update of the live
release with the service's scale; one whose new tasks fail leaves the service as it was, and
Swarm's rollback is never followed by a removal. A TCP check and stop-first on swarm."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.swarm.conftest import docker
from tests.swarm.test_swarm_target import answers, deploy, image_body, wait_replicas

# Exits at once when BREAK is set: a restart with it fails inside the swarm.
GUARDED = (
    '[ -z "$BREAK" ] || exit 3; mkdir -p /www && echo "ok $(hostname)" > /www/index.html '
    '&& exec httpd -f -p "$PORT" -h /www'
)


@pytest.mark.timeout(300)
async def test_a_failed_restart_keeps_the_service_and_its_scale(
    swarm: None,
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    data_dir: Path,
) -> None:
    body = image_body("restarts", "x", run_cmd=GUARDED, health_check={"path": "/", "timeout": 5})
    live = await deploy(dclient, auth, body)
    assert live["status"] == "live", live["error"]
    sid = live["service_id"]
    resp = await dclient.post(f"/api/v1/services/{sid}/scale", json={"replicas": 2}, headers=auth)
    assert resp.status == 200, await resp.text()
    await wait_replicas(dclient, auth, sid, 2)

    # A restart keeps the scale (not the release's 1).
    resp = await dclient.post(f"/api/v1/services/{sid}/restart", headers=auth)
    assert resp.status in (200, 202), await resp.text()
    await wait_replicas(dclient, auth, sid, 2)

    # An env change applied by a restart whose tasks fail: a 503, and the service as it was.
    resp = await dclient.post(
        f"/api/v1/services/{sid}/env?apply=true",
        json={"key": "BREAK", "value": "1"},
        headers=auth,
    )
    assert resp.status == 503, await resp.text()
    name = "dployr-" + sid.replace("_", "-")
    assert await asyncio.to_thread(docker, "service", "ls", "-q", "--filter", f"name={name}")
    await wait_replicas(dclient, auth, sid, 2)
    said = await asyncio.to_thread(answers, sid)
    assert len(said) == 2 and all(s.startswith("ok ") for s in said), said


@pytest.mark.timeout(300)
async def test_a_tcp_check_and_stop_first_on_swarm(
    swarm: None,
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    data_dir: Path,
) -> None:
    # No path: the check takes a TCP connection inside the task (nc, then `true`).
    body: dict[str, Any] = image_body(
        "tcp", "one", health_check={"path": None, "timeout": 10}, strategy="stop-first"
    )
    live = await deploy(dclient, auth, body)
    assert live["status"] == "live", live["error"]
    name = "dployr-" + live["service_id"].replace("_", "-")
    order = await asyncio.to_thread(
        docker, "service", "inspect", name, "--format", "{{.Spec.UpdateConfig.Order}}"
    )
    assert order == "stop-first"
    again = await deploy(dclient, auth, image_body("tcp", "two", health_check={"path": None}))
    assert again["status"] == "live", again["error"]
    said = await asyncio.to_thread(answers, live["service_id"])
    assert len(said) == 1 and said[0].startswith("two "), said
