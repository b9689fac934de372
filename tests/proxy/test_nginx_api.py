"""The routes API through a real, private nginx to real containers: a deployment's domain and
API routes are served, a redeploy switches, bad routes and a config nginx refuses leave its
files as they were, a daemon start renders the table again, deletes stop serving."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from tests.conftest import bearer, login, make_config, register
from tests.docker.conftest import (
    commit,
    docker_engine,  # noqa: F401  (a fixture)
    make_repo,
)
from tests.proxy.conftest import BAD_DOMAINS, Nginx, deploy_live, static, through
from tests.proxy.test_nginx import plant_certificate

pytestmark = pytest.mark.integration
Client = TestClient  # type: ignore[type-arg]
ROUTES = "/api/v1/proxy/routes"


def files(nginx: Nginx) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(nginx.conf_dir.iterdir())}


@pytest.mark.usefixtures("docker_engine")
async def test_routes_through_nginx(
    aiohttp_client: Any, nginx: Nginx, data_dir: Path, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    config = make_config(
        data_dir,
        runtime={"allow_local_sources": True, "drain_seconds": 0.2, "health_timeout": 20},
        proxy=nginx.proxy_config(nginx_certs=str(certs)),
    )
    client: Client = await aiohttp_client(create_app(config))
    await register(client)
    auth = bearer((await login(client))["access_token"])
    one = await asyncio.to_thread(make_repo, tmp_path / "one", {"index.html": "hello one\n"})
    two = await asyncio.to_thread(
        make_repo, tmp_path / "two", {"index.html": "two\n", "v2/index.html": "hello two\n"}
    )

    web = await deploy_live(client, auth, static(one, "web", domain="web.localhost"))
    assert await through(nginx) == (200, "hello one\n")
    other = await deploy_live(client, auth, static(two, "other"))
    resp = await client.post(
        ROUTES,
        json={"domain": "web.localhost", "service_id": other["service_id"], "path_prefix": "/v2"},
        headers=auth,
    )
    assert resp.status == 201, await resp.text()
    v2 = await resp.json()
    assert await through(nginx, "/v2/index.html") == (200, "hello two\n")
    assert await through(nginx) == (200, "hello one\n")

    # A redeploy switches the upstream: the new release answers once it is live.
    await asyncio.to_thread(commit, one, {"index.html": "hello again\n"}, "second")
    await deploy_live(client, auth, static(one, "web", domain="web.localhost"))
    assert await through(nginx) == (200, "hello again\n")

    # Refused before nginx sees them: dployr's files stay as they were.
    before = await asyncio.to_thread(files, nginx)
    for domain in BAD_DOMAINS:
        resp = await client.post(
            ROUTES, json={"domain": domain, "service_id": web["service_id"]}, headers=auth
        )
        assert resp.status == 400, (domain, await resp.text())
    assert await asyncio.to_thread(files, nginx) == before

    # Refused by nginx (a certificate it cannot load): 502 with its words, nothing changed.
    await asyncio.to_thread(plant_certificate, certs / "bad.test", b"garbage", b"garbage")
    resp = await client.post(
        ROUTES, json={"domain": "bad.test", "service_id": web["service_id"]}, headers=auth
    )
    assert resp.status == 502, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "proxy_error"
    assert error["details"]["backend"] == "nginx"
    assert "bad.test/fullchain.pem" in error["details"]["message"]
    assert await asyncio.to_thread(files, nginx) == before
    assert (await (await client.get(ROUTES, headers=auth)).json())["total"] == 2
    assert await through(nginx) == (200, "hello again\n")

    # A daemon start renders the table again: files lost meanwhile come back.
    await client.close()
    for name in before:
        await asyncio.to_thread((nginx.conf_dir / name).unlink)
    client = await aiohttp_client(create_app(config))
    auth = bearer((await login(client))["access_token"])
    assert await asyncio.to_thread(files, nginx) == before
    assert await through(nginx, "/v2/index.html") == (200, "hello two\n")

    # Deleting the route sends /v2 back to the root route; deleting the service ends both.
    resp = await client.delete(f"{ROUTES}/{v2['id']}", headers=auth)
    assert resp.status == 204
    status, _ = await through(nginx, "/v2/index.html")
    assert status == 404  # the first app has no v2/
    resp = await client.delete(f"/api/v1/services/{web['service_id']}", headers=auth)
    assert resp.status == 204
    assert "dployr-web.localhost.conf" not in await asyncio.to_thread(files, nginx)
    assert (await through(nginx))[0] == 404
    assert (await (await client.get(ROUTES, headers=auth)).json())["total"] == 0
