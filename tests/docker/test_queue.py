"""One deployment a service at a time, cancelling, config changes (PUT), build time limits,
env apply, and the event log every transition writes to."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from dployr.app import create_app
from dployr.keys import BUS, DB
from dployr.store.events import events_after
from tests.conftest import login, register
from tests.docker.conftest import (
    STATIC_APP,
    agent_containers,
    agent_images,
    deploy_config,
    fetch_text,
    make_repo,
    wait_done,
)


def body_for(repo: Path, **extra: Any) -> dict[str, Any]:
    return {"name": "web", "source": "local", "path": str(repo), "runtime": "static", **extra}


async def post(client: TestClient, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:  # type: ignore[type-arg]
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    return dict(await resp.json())


async def test_deployments_of_a_service_queue_and_cancel(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    async with dclient.app[BUS].subscribe() as subscription:
        slow = await post(dclient, auth, body_for(repo, build_cmd="sleep 3"))
        queued = await post(dclient, auth, body_for(repo))
        doomed = await post(dclient, auth, body_for(repo))
        await asyncio.sleep(0.5)
        current = await (
            await dclient.get(f"/api/v1/deployments/{queued['id']}", headers=auth)
        ).json()
        assert current["status"] == "queued"
        resp = await dclient.delete(f"/api/v1/deployments/{doomed['id']}", headers=auth)
        assert resp.status == 204
        first = await wait_done(dclient, auth, slow["id"])
        second = await wait_done(dclient, auth, queued["id"])
        cancelled = await wait_done(dclient, auth, doomed["id"])
        assert (first["status"], second["status"], cancelled["status"]) == (
            "live",
            "live",
            "cancelled",
        )
        assert second["started_at"] >= first["finished_at"]
        published = []
        while not subscription.queue.empty():
            published.append(subscription.queue.get_nowait())

    # Every transition is an event, persisted in order and published on the bus.
    stored = [
        e
        for e in await events_after(dclient.app[DB], 0, None)
        if e.data.get("deployment_id") == slow["id"]
    ]
    types = [e.type for e in stored]
    assert types[0] == "deployment.created" and types[-1] == "deployment.succeeded"
    stages = [e.data["stage"] for e in stored if e.type == "deployment.progress"]
    for stage in ("fetching", "building", "starting", "health_checking", "switching"):
        assert stage in stages
    progress = [e.data["progress"] for e in stored]
    assert progress == sorted(progress)
    assert [e.id for e in published if e.data.get("deployment_id") == slow["id"]] == [
        e.id for e in stored
    ]
    assert any(e.type == "deployment.cancelled" for e in published)
    resp = await dclient.delete(f"/api/v1/deployments/{doomed['id']}", headers=auth)
    assert resp.status == 204  # a finished one leaves the history


async def test_put_makes_a_new_deployment_and_env_apply_restarts(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    run = 'echo "$COLOR" > /app/color.txt && exec httpd -f -p "$PORT" -h /app'
    first = await wait_done(
        dclient,
        auth,
        (await post(dclient, auth, body_for(repo, run_cmd=run, env={"COLOR": "red"})))["id"],
    )
    resp = await dclient.put(
        f"/api/v1/deployments/{first['id']}", json={"env": {"COLOR": "blue"}}, headers=auth
    )
    assert resp.status == 202
    changed = await wait_done(dclient, auth, (await resp.json())["id"])
    assert (
        changed["status"] == "live"
        and changed["number"] == 2
        and changed["env"] == {"COLOR": "blue"}
    )
    sid = changed["service_id"]
    service = await (await dclient.get(f"/api/v1/services/{sid}", headers=auth)).json()
    assert await fetch_text(service["host_port"], "/color.txt") == (200, "blue\n")

    resp = await dclient.post(
        f"/api/v1/services/{sid}/env?apply=true",
        json={"key": "COLOR", "value": "green"},
        headers=auth,
    )
    assert resp.status == 200 and (await resp.json())["value"] == "green"
    service = await (await dclient.get(f"/api/v1/services/{sid}", headers=auth)).json()
    for _ in range(50):
        try:
            if await fetch_text(service["host_port"], "/color.txt") == (200, "green\n"):
                break
        except OSError:
            pass
        await asyncio.sleep(0.1)
    assert await fetch_text(service["host_port"], "/color.txt") == (200, "green\n")
    resp = await dclient.delete(f"/api/v1/services/{sid}/env/COLOR", headers=auth)
    assert resp.status == 204
    resp = await dclient.delete(f"/api/v1/services/{sid}/env/COLOR", headers=auth)
    assert resp.status == 404
    env = await (await dclient.get(f"/api/v1/services/{sid}/env", headers=auth)).json()
    assert env["env"] == []


async def test_a_build_past_its_limit_fails_cleanly(
    aiohttp_client: Any, docker_engine: None, data_dir: Path, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(deploy_config(data_dir, build_timeout=10)))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    marker = f"sleep 120 # {data_dir.name}-{id(client)}"
    created = await post(client, auth, body_for(repo, build_cmd=f"echo started; {marker}"))
    failed = await wait_done(client, auth, created["id"], limit=60)
    assert failed["status"] == "failed" and "limit of 10 s" in failed["error"], failed
    assert await asyncio.to_thread(agent_containers, data_dir) == []

    def build_containers() -> list[str]:
        listing = subprocess.run(
            ["docker", "ps", "-a", "--no-trunc", "--format", "{{.Command}}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return [line for line in listing.splitlines() if marker in line]

    # The engine stops the build and removes its intermediate container when we hang up.
    for _ in range(50):
        if not await asyncio.to_thread(build_containers):
            break
        await asyncio.sleep(0.2)
    assert await asyncio.to_thread(build_containers) == []


async def test_images_beyond_keep_releases_are_pruned(
    aiohttp_client: Any, docker_engine: None, data_dir: Path, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(deploy_config(data_dir, keep_releases=2)))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    done = []
    for n in range(3):
        created = await post(client, auth, body_for(repo, build_cmd=f"echo release {n}"))
        done.append(await wait_done(client, auth, created["id"]))
    assert [d["status"] for d in done] == ["live"] * 3
    for _ in range(50):  # the old release drains, stops, and then the prune runs
        images = await asyncio.to_thread(agent_images, data_dir)
        if len(images) <= 2:
            break
        await asyncio.sleep(0.2)
    assert sorted(tag.rsplit(":", 1)[1] for tag in images) == ["2", "3"], images
    resp = await client.post(f"/api/v1/deployments/{done[0]['id']}/rollback", headers=auth)
    assert resp.status == 409 and "pruned" in (await resp.json())["error"]["message"]
    resp = await client.post(f"/api/v1/deployments/{done[1]['id']}/rollback", headers=auth)
    assert resp.status == 202
    rolled = await wait_done(client, auth, (await resp.json())["id"])
    assert rolled["status"] == "live" and rolled["artifact"] == done[1]["artifact"]
