"""auto_deploy "poll" end to end: the scheduler's ls-remote round finds a new commit on a real
loopback `git daemon` and it goes live (`triggered_by: "poll"`), on the Docker engine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from dployr.app import create_app
from tests.conftest import login, register
from tests.docker.conftest import commit, deploy_config, fetch_text, make_repo, wait_done

Client = TestClient  # type: ignore[type-arg]


async def test_the_scheduled_poll_deploys_a_new_head(
    aiohttp_client: Any, docker_engine: None, data_dir: Path, git_server: tuple[Path, int]
) -> None:
    client: Client = await aiohttp_client(create_app(deploy_config(data_dir, poll_interval=5)))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    base, port = git_server
    await asyncio.to_thread(make_repo, base / "app", {"index.html": "v1\n"})
    body = {
        "name": "polled",
        "source": "remote",
        "remote": f"git://127.0.0.1:{port}/app",
        "runtime": "static",
        "auto_deploy": "poll",
    }
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    first = await wait_done(client, auth, (await resp.json())["id"])
    assert first["status"] == "live", first

    sha = await asyncio.to_thread(commit, base / "app", {"index.html": "v2\n"}, "two")
    deadline, polled = time.monotonic() + 120, []
    while not polled:
        assert time.monotonic() < deadline, "no poll deployment within 120 s"
        await asyncio.sleep(0.5)
        resp = await client.get(
            "/api/v1/deployments", params={"service_id": first["service_id"]}, headers=auth
        )
        polled = [d for d in (await resp.json())["items"] if d["triggered_by"] == "poll"]
    done = await wait_done(client, auth, polled[0]["id"])
    assert (done["status"], done["commit_sha"]) == ("live", sha), done
    resp = await client.get(f"/api/v1/services/{first['service_id']}", headers=auth)
    assert await fetch_text((await resp.json())["host_port"]) == (200, "v2\n")
    assert len(polled) == 1
