"""Edges of the pipeline against the real engine: a local source through a symlink, an engine
that is down while a service is started, stopped or restarted, a proxy that refuses a switch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from dployr.app import create_app
from dployr.errors import ProxyError
from dployr.keys import DEPLOYER
from dployr.proxy.protocol import Route, Upstreams
from tests.conftest import bearer, login, register
from tests.docker.conftest import (
    STATIC_APP,
    agent_containers,
    commit,
    deploy_config,
    fetch_text,
    make_repo,
    wait_done,
)

Client = TestClient  # type: ignore[type-arg]


def _body(path: Path, **extra: Any) -> dict[str, Any]:
    return {"name": "web", "source": "local", "path": str(path), "runtime": "static",
            "port": 8080, "health_check": {"path": "/", "timeout": 20}, **extra}  # fmt: skip


async def _deploy(client: Client, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    return await wait_done(client, auth, (await resp.json())["id"])


async def test_a_local_source_through_a_symlink_deploys_what_it_points_at(
    dclient: Client, auth: dict[str, str], tmp_path: Path
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "real" / "app", STATIC_APP)
    link = tmp_path / "link"
    await asyncio.to_thread(link.symlink_to, repo)
    live = await _deploy(dclient, auth, _body(link))
    assert live["status"] == "live", live
    assert await fetch_text(live["host_port"]) == (200, "hello v1\n")

    # A plain directory (no git) behind a link: its files are read, not the link itself.
    def plain_site() -> Path:
        site = tmp_path / "real" / "site"
        site.mkdir()
        (site / "index.html").write_text("plain v1\n")
        (tmp_path / "site-link").symlink_to(site)
        return tmp_path / "site-link"

    site_link = await asyncio.to_thread(plain_site)
    live = await _deploy(dclient, auth, _body(site_link, name="site"))
    assert live["status"] == "live", live
    assert await fetch_text(live["host_port"]) == (200, "plain v1\n")


async def test_an_engine_that_is_down_answers_503_on_start_stop_restart(
    aiohttp_client: Any, docker_engine: None, data_dir: Path, tmp_path: Path
) -> None:
    """The release is live under a daemon that reaches the engine; a second daemon on the same
    data dir points runtime.docker_host at a socket where nothing listens."""
    first: Client = await aiohttp_client(create_app(deploy_config(data_dir)))
    await register(first)
    auth = bearer((await login(first))["access_token"])
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    live = await _deploy(first, auth, _body(repo))
    assert live["status"] == "live", live
    await first.close()

    down = f"unix://{tmp_path}/nothing-listens.sock"
    second: Client = await aiohttp_client(create_app(deploy_config(data_dir, docker_host=down)))
    auth = bearer((await login(second))["access_token"])
    service = f"/api/v1/services/{live['service_id']}"
    for action in ("stop", "restart", "start"):
        resp = await second.post(f"{service}/{action}", headers=auth)
        body = await resp.json()
        assert resp.status == 503, (action, body)
        assert body["error"]["code"] == "unavailable"
        assert "not reachable" in body["error"]["message"]
        assert "Traceback" not in await resp.text()
    resp = await second.delete(service, headers=auth)
    assert resp.status == 503, await resp.text()
    assert (await second.get(service, headers=auth)).status == 200  # nothing was deleted
    status = await second.get(f"{service}/status", headers=auth)
    assert status.status == 200 and (await status.json())["status"] == "unknown"
    # The failed stop changed nothing: the service still wants to run, and it does.
    assert (await (await second.get(service, headers=auth)).json())["desired_state"] == "running"
    assert len(await asyncio.to_thread(agent_containers, data_dir, False)) == 1
    assert await fetch_text(live["host_port"]) == (200, "hello v1\n")


class RefusingProxy:
    """A proxy whose config test fails (what Caddy or nginx answer to a bad config)."""

    name = "refusing"

    async def apply(self, routes: Sequence[Route], upstreams: Upstreams) -> None:
        raise ProxyError("refusing", "unknown directive at line 3", "the proxy refused the route")

    async def problem(self) -> str | None:
        return None

    def https(self) -> str:
        return "off"


async def test_a_proxy_error_fails_the_release_with_its_message(
    dclient: Client, auth: dict[str, str], tmp_path: Path
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    # Routed: the switch changes what the proxy serves (a service without routes switches
    # without asking the proxy at all).
    first = await _deploy(dclient, auth, _body(repo, domain="edge.localhost"))
    assert first["status"] == "live", first
    await asyncio.to_thread(commit, repo, {"index.html": "hello v2\n"}, "v2")
    dclient.app[DEPLOYER].router.proxy = RefusingProxy()
    second = await _deploy(dclient, auth, _body(repo))
    assert second["status"] == "failed", second
    assert second["error"].startswith("the proxy refused the route"), second["error"]
    assert "internal error" not in second["error"]
    assert await fetch_text(first["host_port"]) == (200, "hello v1\n")


async def test_a_user_who_owns_services_cannot_be_deleted(
    dclient: Client, auth: dict[str, str], data_dir: Path
) -> None:
    """DELETE /users/me is a 409 while the user owns a service (its container would run on with
    no owner); once the services are deleted, the account goes and nothing of it runs."""
    await register(dclient, email="bob@example.com", headers=auth)
    bob = bearer((await login(dclient, "bob@example.com"))["access_token"])
    serve = "mkdir -p /w && echo hi > /w/index.html && exec httpd -f -p 8080 -h /w"
    body = {"name": "bobs", "source": "image", "image": "busybox:stable", "port": 8080,
            "run_cmd": serve, "health_check": {"path": "/", "timeout": 20}}  # fmt: skip
    live = await _deploy(dclient, bob, body)
    assert live["status"] == "live", live
    resp = await dclient.delete("/api/v1/users/me", headers=bob)
    error = (await resp.json())["error"]
    assert resp.status == 409, error
    assert error["code"] == "conflict" and error["details"]["services"] == 1
    assert (await dclient.get("/api/v1/auth/me", headers=bob)).status == 200
    assert await fetch_text(live["host_port"]) == (200, "hi\n")

    resp = await dclient.delete(f"/api/v1/services/{live['service_id']}", headers=bob)
    assert resp.status == 204
    assert (await dclient.delete("/api/v1/users/me", headers=bob)).status == 204
    assert (await dclient.get("/api/v1/auth/me", headers=bob)).status == 401
    assert await asyncio.to_thread(agent_containers, data_dir) == []


async def test_a_local_path_is_checked_again_when_it_is_fetched(
    dclient: Client, auth: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    """Accepted while its link pointed at an app; by the time it runs the link points at the
    data dir: the fetch refuses it, and nothing of the data dir reaches a build."""
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    link = tmp_path / "link"
    await asyncio.to_thread(link.symlink_to, repo)
    # The first release holds the service's queue for its 4 s health check (a 404 page).
    slow = _body(repo, health_check={"path": "/missing", "timeout": 4})
    first = await dclient.post("/api/v1/deployments", json=slow, headers=auth)
    assert first.status == 202
    second = await dclient.post("/api/v1/deployments", json=_body(link), headers=auth)
    assert second.status == 202, await second.text()

    def swap() -> None:
        (tmp_path / "new-link").symlink_to(data_dir)
        (tmp_path / "new-link").replace(link)

    await asyncio.to_thread(swap)
    done = await wait_done(dclient, auth, (await second.json())["id"])
    assert done["status"] == "failed", done
    assert "inside the daemon's data dir" in done["error"], done["error"]
    assert done["stages"][0] == {**done["stages"][0], "name": "fetching", "status": "failed"}
