"""At start, reconcile renders the proxy config again from the route table: a proxy that lost
what dployr gave it (a fresh Caddy, nginx files removed) serves the routes after a daemon
restart."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

from dployr.app import create_app
from tests.conftest import login, make_config, register
from tests.docker.conftest import wait_done
from tests.proxy.conftest import Caddy, Nginx, get

SERVE = 'mkdir -p /www && echo "hello $WHO" > /www/index.html && exec httpd -f -p "$PORT" -h /www'


def forget(proxy: Caddy | Nginx) -> None:
    """What a wiped proxy looks like: a fresh Caddy, or nginx without dployr's files."""
    if isinstance(proxy, Caddy):
        proxy.stop()
        proxy.start()  # an empty config: nothing listens on http_port
        return
    for file in proxy.conf_dir.glob("dployr*"):
        file.unlink()
    subprocess.run(["nginx", "-c", str(proxy.conf), "-s", "reload"], check=True)
    time.sleep(0.5)  # the new workers take over


async def served(port: int) -> tuple[int, str] | str:
    try:
        return await asyncio.to_thread(get, port, "web.localhost")
    except OSError as err:
        return type(err).__name__


async def test_a_daemon_restart_renders_the_config_again(
    any_proxy: Caddy | Nginx,
    aiohttp_client: Any,
    docker_engine: None,
    data_dir: Path,
) -> None:
    proxy = any_proxy
    config = make_config(data_dir, runtime={"drain_seconds": 0.2}, proxy=proxy.proxy_config())
    client = await aiohttp_client(create_app(config))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    body = {"name": "web", "source": "image", "runtime": "image", "image": "busybox:stable",
            "run_cmd": SERVE, "port": 8080, "env": {"WHO": "routes"}, "domain": "web.localhost",
            "health_check": {"path": "/", "timeout": 20}}  # fmt: skip
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    live = await wait_done(client, auth, (await resp.json())["id"])
    assert live["status"] == "live", live["error"]
    assert await served(proxy.http_port) == (200, "hello routes\n")
    await client.close()  # the daemon stops; its container runs on

    # The proxy loses dployr's config while the daemon is down.
    await asyncio.to_thread(forget, proxy)
    assert await served(proxy.http_port) != (200, "hello routes\n")

    await aiohttp_client(create_app(config))  # the daemon starts again: reconcile renders
    assert await served(proxy.http_port) == (200, "hello routes\n")
