"""A daemon's swarm service behind the swarm proxy: its domain reaches every task through the
proxy's host port (127.0.0.1), and the proxy goes with the last routed swarm service."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from dployr.config import Config
from tests.conftest import login, make_config, register
from tests.proxy.conftest import proxy_port
from tests.swarm.conftest import docker
from tests.swarm.test_proxy import answers
from tests.swarm.test_swarm_target import deploy, image_body

pytestmark = pytest.mark.integration


@pytest.fixture
async def config(data_dir: Path) -> Config:
    """Free proxy ports, and swarm names of its own: its swarm proxy is `<network>-proxy`, so
    daemons sharing the engine never meet."""
    http_port, https_port = await asyncio.to_thread(lambda: (proxy_port(), proxy_port()))
    return make_config(
        data_dir,
        runtime={"health_timeout": 20},
        proxy={"backend": "none", "http_port": http_port, "https_port": https_port},
        swarm={"network": f"dpt{secrets.token_hex(3)}"},
    )


@pytest.mark.timeout(300)
async def test_a_domain_reaches_every_task_through_the_swarm_proxy(
    swarm: None, docker_engine: None, aiohttp_client: Any, config: Config
) -> None:
    client: TestClient = await aiohttp_client(create_app(config))  # type: ignore[type-arg]
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    body = image_body("web", "hello", replicas=2, domain="web.localhost")
    live = await deploy(client, auth, body)
    assert live["status"] == "live", live["error"]
    proxy = f"{config.swarm.network}-proxy"
    # Only the swarm proxy serves it (the host's backend is `none`), on the host port.
    seen = await asyncio.to_thread(answers, config.proxy.http_port, "web.localhost", 2)
    assert len(seen) == 2 and all(s.startswith("hello ") for s in seen), seen

    resp = await client.delete(f"/api/v1/services/{live['service_id']}", headers=auth)
    assert resp.status in (200, 204), await resp.text()
    # Its only route went with it: no swarm route is left, so neither is the proxy.
    assert await asyncio.to_thread(docker, "service", "ls", "-q", "--filter", f"name={proxy}") == ""
