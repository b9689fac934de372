"""strategy "stop-first" (SPEC §14): the old instance stops before the new one starts (the
proxy answers 503 in the gap, never 502), and a new instance that fails or is cancelled brings
the old release back, on the same data; restart and env ?apply=true do the same."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from tests.conftest import login, make_config, register
from tests.docker.conftest import commit, make_repo, wait_done
from tests.docker.test_pipeline import deploy
from tests.docker.test_volumes import APP, VOLUMES, app_body, hit
from tests.proxy.conftest import Caddy, need
from tests.proxy.test_caddy import fetch

Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Caddy]:
    """A private Caddy (tests/proxy/conftest.py) the daemon drives."""
    need("caddy")
    instance = Caddy.create(tmp_path / "caddy")
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def running_containers(service_id: str) -> list[str]:
    return subprocess.run(
        ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=dployr.service={service_id}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip


async def log_of(client: Client, auth: dict[str, str], deployment_id: str) -> str:
    resp = await client.get(f"/api/v1/deployments/{deployment_id}/logs", headers=auth)
    return "\n".join(line["message"] for line in (await resp.json())["logs"])


async def current(client: Client, auth: dict[str, str], sid: str) -> dict[str, Any]:
    return dict(await (await client.get(f"/api/v1/services/{sid}", headers=auth)).json())


async def test_a_failed_or_cancelled_stop_first_release_brings_the_old_one_back(
    dclient: Client, auth: dict[str, str], tmp_path: Path
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", APP)
    body = app_body(repo, volumes=VOLUMES, strategy="stop-first")
    first = await deploy(dclient, auth, body)
    assert first["status"] == "live", first["error"]
    sid = first["service_id"]
    assert await hit(dclient, auth, sid) == "r1\n"

    # Release 2 exits at once: it fails its health check, and release 1 runs again.
    await asyncio.to_thread(commit, repo, {"release": "r2\n"}, "r2")
    failed = await deploy(dclient, auth, app_body(repo, env={"BROKEN": "1"}))
    assert failed["status"] == "failed", failed
    log = await log_of(dclient, auth, failed["id"])
    assert "stop-first: stopping release 1" in log, log
    assert "stop-first: release 1 runs again" in log, log
    service = await current(dclient, auth, sid)
    assert service["current_deployment_id"] == first["id"]
    assert service["status"] == "running"
    assert await hit(dclient, auth, sid) == "r1\nr1\n"  # release 1's code, the same data
    assert await asyncio.to_thread(running_containers, sid) == [service["container_id"]]

    # Release 3 is cancelled while it starts up: release 1 runs again.
    resp = await dclient.post(
        "/api/v1/deployments",
        json=app_body(repo, env={"BROKEN": "", "DELAY": "60"}),
        headers=auth,
    )
    assert resp.status == 202, await resp.text()
    third = await resp.json()
    for _ in range(600):
        state = await (await dclient.get(f"/api/v1/deployments/{third['id']}", headers=auth)).json()
        if state["status"] == "health_checking":
            break
        await asyncio.sleep(0.1)
    assert state["status"] == "health_checking", state
    resp = await dclient.delete(f"/api/v1/deployments/{third['id']}", headers=auth)
    assert resp.status in (202, 204), await resp.text()
    cancelled = await wait_done(dclient, auth, third["id"])
    assert cancelled["status"] == "cancelled", cancelled
    assert "stop-first: release 1 runs again" in await log_of(dclient, auth, third["id"])
    service = await current(dclient, auth, sid)
    assert service["current_deployment_id"] == first["id"]
    assert await hit(dclient, auth, sid) == "r1\nr1\nr1\n"
    assert await asyncio.to_thread(running_containers, sid) == [service["container_id"]]

    # A restart whose new instance fails: 503 saying so, and the old release runs again.
    resp = await dclient.post(f"/api/v1/services/{sid}/env", json={"key": "DELAY", "value": "0"},
                              headers=auth)  # fmt: skip
    assert resp.status == 200
    resp = await dclient.post(
        f"/api/v1/services/{sid}/env?apply=true", json={"key": "BROKEN", "value": "1"},
        headers=auth,
    )  # fmt: skip
    error = (await resp.json())["error"]
    assert resp.status == 503, error
    assert "stop-first" in error["message"] and "runs again" in error["message"], error
    assert await hit(dclient, auth, sid) == "r1\nr1\nr1\nr1\n"
    service = await current(dclient, auth, sid)
    assert await asyncio.to_thread(running_containers, sid) == [service["container_id"]]

    # A restart that works: the old instance stopped first, the new one has the data.
    resp = await dclient.delete(f"/api/v1/services/{sid}/env/BROKEN", headers=auth)
    assert resp.status == 204
    resp = await dclient.post(f"/api/v1/services/{sid}/restart", headers=auth)
    assert resp.status == 200, await resp.text()
    restarted = await current(dclient, auth, sid)
    assert restarted["container_id"] != service["container_id"]
    assert await hit(dclient, auth, sid) == "r1\nr1\nr1\nr1\nr1\n"
    assert await asyncio.to_thread(running_containers, sid) == [restarted["container_id"]]


async def test_the_stop_first_gap_answers_503_through_the_proxy(
    aiohttp_client: Any, docker_engine: None, data_dir: Path, tmp_path: Path, proxy: Caddy
) -> None:
    caddy = proxy
    config = make_config(
        data_dir,
        runtime={"allow_local_sources": True, "drain_seconds": 0.2, "health_timeout": 20},
        proxy=caddy.proxy_config(),
    )
    client = await aiohttp_client(create_app(config))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", APP)
    body = app_body(repo, volumes=VOLUMES, strategy="stop-first", domain="sf.localhost")
    first = await deploy(client, auth, body)
    assert first["status"] == "live", first["error"]
    assert (await fetch(caddy, "/index.html", host="sf.localhost"))[0] == 200

    # Release 2 takes 3 s to listen: in the gap the proxy answers 503, never 502.
    await asyncio.to_thread(commit, repo, {"release": "r2\n"}, "r2")
    resp = await client.post(
        "/api/v1/deployments", json=app_body(repo, env={"DELAY": "3"}), headers=auth
    )
    assert resp.status == 202, await resp.text()
    second_id = (await resp.json())["id"]
    seen: list[int] = []
    while True:
        state = await (await client.get(f"/api/v1/deployments/{second_id}", headers=auth)).json()
        seen.append((await fetch(caddy, "/index.html", host="sf.localhost"))[0])
        if state["status"] in ("live", "failed", "cancelled"):
            break
        await asyncio.sleep(0.05)
    assert state["status"] == "live", state
    assert 503 in seen and 502 not in seen, seen
    status, text = await fetch(caddy, "/cgi-bin/hit", host="sf.localhost")
    assert (status, text) == (200, "r2\n")
