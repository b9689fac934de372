"""POST /services/{id}/scale (SPEC §15) off swarm: a body checked, a service without a live
release a 409, a live service of another target a 400 naming `replicas`; `replicas` is null
on such a service and its status. One real release on the process target (a static site)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from dployr.app import create_app
from tests.conftest import bearer, login, make_config, register, user_headers

Client = TestClient  # type: ignore[type-arg]


async def _wait_finished(client: Client, headers: dict[str, str], deployment_id: str) -> Any:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        resp = await client.get(f"/api/v1/deployments/{deployment_id}", headers=headers)
        body = await resp.json()
        if body["status"] in ("failed", "cancelled", "live"):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{deployment_id} did not finish")


async def _scale(client: Client, headers: dict[str, str], sid: str, body: Any) -> Any:
    resp = await client.post(f"/api/v1/services/{sid}/scale", json=body, headers=headers)
    return resp.status, await resp.json()


async def test_scale_is_for_live_swarm_services(aiohttp_client: Any, tmp_path: Path):
    config = make_config(
        tmp_path / "data",
        runtime={
            "default_target": "process",
            "allow_local_sources": True,
            "drain_seconds": 0,
            "docker_host": f"unix://{tmp_path}/nothing-listens.sock",
        },
    )
    client: Client = await aiohttp_client(create_app(config))
    await register(client)
    admin = bearer((await login(client))["access_token"])
    site = tmp_path / "site"
    await asyncio.to_thread(site.mkdir)
    await asyncio.to_thread((site / "index.html").write_text, "hello\n")

    # No live release (a docker release that fails: no engine listens): 409.
    resp = await client.post(
        "/api/v1/deployments",
        json={"name": "gone", "source": "image", "image": "busybox:stable", "target": "docker"},
        headers=admin,
    )
    failed = await _wait_finished(client, admin, (await resp.json())["id"])
    assert failed["status"] == "failed", failed
    status, body = await _scale(client, admin, failed["service_id"], {"replicas": 2})
    assert status == 409, body
    assert body["error"]["code"] == "invalid_state"
    assert "no live release to scale" in body["error"]["message"]

    # A live release on the process target: the body is checked, then the target.
    resp = await client.post(
        "/api/v1/deployments",
        json={"name": "web", "source": "local", "path": str(site), "runtime": "static"},
        headers=admin,
    )
    live = await _wait_finished(client, admin, (await resp.json())["id"])
    assert live["status"] == "live", live
    sid = live["service_id"]
    for bad in ({}, {"replicas": 0}, {"replicas": 101}, {"replicas": "2"}, {"replicas": None},
                {"replicas": 2, "placement": []}):  # fmt: skip
        status, body = await _scale(client, admin, sid, bad)
        assert status == 400, (bad, body)
        assert body["error"]["details"]["field"] in ("replicas", "placement"), (bad, body)
    status, body = await _scale(client, admin, sid, {"replicas": 2})
    assert status == 400, body
    assert body["error"]["details"]["field"] == "replicas"
    assert "scale is for swarm services" in body["error"]["message"]
    assert "process target" in body["error"]["message"]

    # Another user's service is not found; replicas are null off swarm.
    bob = await user_headers(client, admin, "bob@example.com")
    status, body = await _scale(client, bob, sid, {"replicas": 2})
    assert status == 404, body
    service = await (await client.get(f"/api/v1/services/{sid}", headers=admin)).json()
    assert service["replicas"] is None and service["target"] == "process"
    running = await (await client.get(f"/api/v1/services/{sid}/status", headers=admin)).json()
    assert running["status"] == "running" and running["replicas"] is None, running
    resp = await client.delete(f"/api/v1/services/{sid}", headers=admin)
    assert resp.status == 204
