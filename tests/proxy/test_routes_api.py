"""The routes API through a real, private Caddy to real containers: a deployment's domain and
API routes are served, bad or taken ones leave Caddy's config as it was, deletes stop serving."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from tests.conftest import bearer, login, make_config, register
from tests.docker.conftest import (
    docker_engine,  # noqa: F401  (a fixture)
    make_repo,
)
from tests.proxy.conftest import BAD_DOMAINS, Caddy, deploy_live, static, through

pytestmark = pytest.mark.integration
Client = TestClient  # type: ignore[type-arg]
ROUTES = "/api/v1/proxy/routes"


def caddy_state(caddy: Caddy) -> tuple[str, bytes]:
    """What Caddy runs (its admin API's config) and what dployr persisted for it."""
    with urllib.request.urlopen(caddy.admin + "/config/", timeout=5) as answer:
        running = answer.read()
    return caddy.caddyfile.read_text() if caddy.caddyfile.exists() else "", running


@pytest.mark.usefixtures("docker_engine")
async def test_routes_through_caddy(
    aiohttp_client: Any, caddy: Caddy, data_dir: Path, tmp_path: Path
) -> None:
    config = make_config(
        data_dir,
        runtime={"allow_local_sources": True, "drain_seconds": 0.2, "health_timeout": 20},
        proxy=caddy.proxy_config(),
    )
    client: Client = await aiohttp_client(create_app(config))
    await register(client)
    auth = bearer((await login(client))["access_token"])
    one = await asyncio.to_thread(make_repo, tmp_path / "one", {"index.html": "hello one\n"})
    two = await asyncio.to_thread(
        make_repo, tmp_path / "two", {"index.html": "two\n", "v2/index.html": "hello two\n"}
    )

    web = await deploy_live(client, auth, static(one, "web", domain="web.localhost"))
    assert await through(caddy) == (200, "hello one\n")
    other = await deploy_live(client, auth, static(two, "other"))
    resp = await client.post(
        ROUTES,
        json={"domain": "web.localhost", "service_id": other["service_id"], "path_prefix": "/v2"},
        headers=auth,
    )
    assert resp.status == 201, await resp.text()
    v2 = await resp.json()
    assert await through(caddy, "/v2/index.html") == (200, "hello two\n")
    assert await through(caddy) == (200, "hello one\n")

    # Refused before Caddy sees them: its running config and the persisted one stay as they were.
    before = await asyncio.to_thread(caddy_state, caddy)
    for domain in BAD_DOMAINS:
        resp = await client.post(
            ROUTES, json={"domain": domain, "service_id": web["service_id"]}, headers=auth
        )
        assert resp.status == 400, (domain, await resp.text())
    resp = await client.post(
        ROUTES, json={"domain": "WEB.localhost", "service_id": other["service_id"]}, headers=auth
    )
    assert resp.status == 409, await resp.text()
    resp = await client.post(
        "/api/v1/deployments", json=static(two, "third", domain="web.localhost"), headers=auth
    )
    assert resp.status == 409, await resp.text()
    assert await asyncio.to_thread(caddy_state, caddy) == before
    assert (await (await client.get(ROUTES, headers=auth)).json())["total"] == 2

    # Deleting the route sends /v2 back to the root route; deleting the service ends both.
    resp = await client.delete(f"{ROUTES}/{v2['id']}", headers=auth)
    assert resp.status == 204
    status, _ = await through(caddy, "/v2/index.html")
    assert status == 404  # the first app has no v2/
    resp = await client.delete(f"/api/v1/services/{web['service_id']}", headers=auth)
    assert resp.status == 204
    assert "web.localhost" not in (await asyncio.to_thread(caddy_state, caddy))[0]
    assert (await (await client.get(ROUTES, headers=auth)).json())["total"] == 0
