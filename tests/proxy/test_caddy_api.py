"""/api/v1/proxy/routes driving a real, private Caddy: what the API takes is served, what it
refuses (a bad domain, a config Caddy refuses) changes nothing Caddy serves."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dployr.app import create_app
from dployr.keys import CONFIG, DEPLOYER
from dployr.proxy.caddy import CaddyProxy
from tests.api.test_routes import BAD_DOMAINS, ROUTES, _admin, _count, _post, _service
from tests.conftest import make_config, register
from tests.proxy.conftest import Caddy
from tests.proxy.test_caddy import fetch

pytestmark = pytest.mark.integration


async def test_routes_through_the_api_reach_caddy(
    caddy: Caddy, tmp_path: Path, aiohttp_client: Any
):
    config = make_config(
        tmp_path / "data",
        # No engine: the service exists, no instance runs (so its route answers 503).
        runtime={"default_target": "docker", "docker_host": f"unix://{tmp_path}/no.sock"},
        proxy=caddy.proxy_config(),
    )
    client = await aiohttp_client(create_app(config))
    await register(client)
    admin = await _admin(client)
    sid = await _service(client, admin, "web")
    status, route = await _post(client, admin, domain="web.localhost", service_id=sid)
    assert status == 201, route
    status, body = await fetch(caddy, "/", host="web.localhost")
    assert status == 503 and "no running instance" in str(body)

    caddyfile = Path(caddy.caddyfile)
    before = await asyncio.to_thread(caddyfile.read_bytes)
    for domain in BAD_DOMAINS:
        status, body = await _post(client, admin, domain=domain, service_id=sid)
        assert status == 400 and body["error"]["details"]["field"] == "domain", (domain, body)
    assert await asyncio.to_thread(caddyfile.read_bytes) == before

    # A config Caddy itself refuses: its HTTP port is held by another listener.
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 - Caddy binds all addresses: so does the squatter
        taken.listen()
        squatted = dataclasses.replace(config.proxy, http_port=taken.getsockname()[1])
        router = client.app[DEPLOYER].router
        router.proxy = CaddyProxy(dataclasses.replace(client.app[CONFIG], proxy=squatted))
        status, body = await _post(client, admin, domain="new.localhost", service_id=sid)
        router.proxy = CaddyProxy(client.app[CONFIG])
    assert status == 502 and body["error"]["code"] == "proxy_error", body
    assert "address already in use" in body["error"]["details"]["message"]
    assert await _count(client) == 1
    assert await asyncio.to_thread(caddyfile.read_bytes) == before
    assert (await fetch(caddy, "/", host="web.localhost"))[0] == 503  # the old config serves

    resp = await client.delete(f"{ROUTES}/{route['id']}", headers=admin)
    assert resp.status == 204
    assert "web.localhost" not in await asyncio.to_thread(caddyfile.read_text)
    with pytest.raises(aiohttp.ClientConnectionError):  # no route left: nothing listens
        for _ in range(50):  # the old server lets go of the port as it stops
            await fetch(caddy, "/", host="web.localhost")
            await asyncio.sleep(0.1)
