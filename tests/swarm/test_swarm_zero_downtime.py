"""Redeploys of a swarm service under load through the swarm proxy lose no request: Swarm
starts each new task, checks it inside the swarm, then stops an old one; the proxy dials
`tasks.<service>` (every task the overlay's DNS names) for each new connection."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from dployr.config import Config
from tests.conftest import login, make_config, register
from tests.proxy import load
from tests.proxy.conftest import proxy_port
from tests.swarm.test_swarm_target import deploy, image_body

HOST = "zero.localhost"


@pytest.fixture
async def config(data_dir: Path) -> Config:
    http_port, https_port = await asyncio.to_thread(lambda: (proxy_port(), proxy_port()))
    return make_config(
        data_dir,
        runtime={"health_timeout": 20},
        proxy={"backend": "none", "http_port": http_port, "https_port": https_port},
        swarm={"network": f"dpz{secrets.token_hex(3)}"},
    )


async def until(result: load.LoadResult, greeting: str, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not any(s.body.startswith(greeting + " ") for s in result.samples[-20:]):
        assert time.monotonic() < deadline, f"never saw {greeting!r}: {result.bodies()}"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(400)
async def test_redeploys_under_load_through_the_swarm_proxy_lose_no_request(
    swarm: None, docker_engine: None, aiohttp_client: Any, config: Config
) -> None:
    client: TestClient = await aiohttp_client(create_app(config))  # type: ignore[type-arg]
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    first = await deploy(client, auth, image_body("zero", "v1", replicas=2, domain=HOST))
    assert first["status"] == "live", first["error"]

    async with load.under_load(config.proxy.http_port, HOST) as result:
        await until(result, "v1")
        for greeting in ("v2", "v3"):
            live = await deploy(client, auth, image_body("zero", greeting, domain=HOST))
            assert live["status"] == "live", live["error"]
            await until(result, greeting)
        deadline = time.monotonic() + 60
        while result.sent < 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    failed = result.failed
    assert result.sent >= 200, result.sent
    assert not failed, f"{len(failed)} of {result.sent} failed: {failed[:5]}"
    greetings = {body.split()[0] for body in result.bodies()}
    assert greetings == {"v1", "v2", "v3"}, result.bodies()
    tasks = {body.split()[1] for body in result.bodies() if body.startswith("v3 ")}
    assert len(tasks) == 2, result.bodies()  # both tasks of the last release answered

    resp = await client.delete(f"/api/v1/services/{first['service_id']}", headers=auth)
    assert resp.status == 204, await resp.text()
