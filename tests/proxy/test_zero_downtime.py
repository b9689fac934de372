"""Redeploys, restarts and rollbacks lose no request: a client loops GETs through a real Caddy
and a real nginx (keep-alive and new connections) to real containers while the service
switches, and gets only 200s; a slow request in flight at a switch completes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from dployr.app import create_app
from tests.conftest import login, make_config, register
from tests.docker.conftest import wait_done
from tests.proxy import load
from tests.proxy.conftest import Caddy, Nginx


# index.html says which release answers; /cgi-bin/slow takes 2 s and says whose it was.
def serve(release: int) -> str:
    """index.html names the release; /cgi-bin/slow takes 2 s and names it too. The release is
    in the run command, the part of its config a rollback brings back."""
    return (
        f'mkdir -p /www/cgi-bin && echo "release {release}" > /www/index.html'
        " && printf '#!/bin/sh\\nsleep 2\\necho Content-Type: text/plain\\necho\\n"
        f"echo slow {release}\\n' > /www/cgi-bin/slow && chmod +x /www/cgi-bin/slow"
        ' && exec httpd -f -p "$PORT" -h /www'
    )


HOST = "app.localhost"
Client = TestClient  # type: ignore[type-arg]


def app_body(release: int) -> dict[str, Any]:
    return {"name": "zero", "source": "image", "runtime": "image", "image": "busybox:stable",
            "run_cmd": serve(release), "port": 8080,
            "domain": HOST, "health_check": {"path": "/", "timeout": 20}}  # fmt: skip


async def post(client: Client, auth: dict[str, str], path: str, body: Any = None) -> Any:
    resp = await client.post(path, json=body, headers=auth)
    assert resp.status in (200, 202), await resp.text()
    return await resp.json()


async def until(result: load.LoadResult, body: str, limit: float = 10) -> None:
    """Until the load loop has seen `body` answered (the proxy serves the new instance)."""
    deadline = time.monotonic() + limit
    while not any(s.body == body for s in result.samples[-20:]):
        assert time.monotonic() < deadline, f"never saw {body!r}: {result.bodies()}"
        await asyncio.sleep(0.05)


async def test_no_request_is_lost_on_redeploy_restart_and_rollback(
    any_proxy: Caddy | Nginx,
    aiohttp_client: Any,
    docker_engine: None,
    data_dir: Path,
) -> None:
    proxy = any_proxy
    config = make_config(
        data_dir,
        runtime={"drain_seconds": 3.0, "health_timeout": 20},
        proxy=proxy.proxy_config(),
    )
    client = await aiohttp_client(create_app(config))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    first = await wait_done(
        client, auth, (await post(client, auth, "/api/v1/deployments", app_body(1)))["id"]
    )
    assert first["status"] == "live", first["error"]
    sid = first["service_id"]

    async with load.under_load(proxy.http_port, HOST) as result:
        await until(result, "release 1")
        # A slow request goes out just before the redeploy and is in flight at its switch.
        slow: list[load.Sample] = []
        slow_task = asyncio.create_task(
            load.request(
                load.Connection(proxy.http_port, HOST), "/cgi-bin/slow", False, load.LoadResult()
            )
        )
        created = await post(client, auth, "/api/v1/deployments", app_body(2))
        second = await wait_done(client, auth, created["id"])
        assert second["status"] == "live", second["error"]
        slow.append(await slow_task)
        await until(result, "release 2")

        service = await (await client.get(f"/api/v1/services/{sid}", headers=auth)).json()
        await post(client, auth, f"/api/v1/services/{sid}/restart")
        restarted = await (await client.get(f"/api/v1/services/{sid}", headers=auth)).json()
        assert restarted["container_id"] != service["container_id"]

        back = await post(client, auth, f"/api/v1/deployments/{first['id']}/rollback")
        rolled = await wait_done(client, auth, back["id"])
        assert rolled["status"] == "live", rolled["error"]
        await until(result, "release 1")
        deadline = time.monotonic() + 60
        while result.sent < 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    failed = result.failed
    assert result.sent >= 200, result.sent
    assert not failed, f"{len(failed)} of {result.sent} failed: {failed[:5]}"
    assert set(result.bodies()) == {"release 1", "release 2"}, result.bodies()
    # The slow request was in flight while the switch happened, and finished on the old release.
    (done,) = slow
    assert done.status == 200 and done.body == "slow 1", done
    switched = min(s.started + s.seconds for s in result.samples if s.body == "release 2")
    assert done.started < switched < done.started + done.seconds, (done, switched)
