"""auto_deploy "poll": a round of `ls-remote` against a real loopback `git daemon` queues a
deployment of a new head, once; not while one runs, not again after it failed, not for a
service that is not polled. The engine socket has nothing behind it (builds fail), which is
all the poller needs: the fetch still records each deployment's commit."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from dployr.app import create_app
from dployr.keys import DEPLOYER
from dployr.pipeline.poll import poll_services
from tests.conftest import bearer, login, make_config, register
from tests.unit.test_sources_git import commit, make_repo

Client = TestClient  # type: ignore[type-arg]
FINISHED = ("live", "failed", "cancelled")


async def _client(aiohttp_client: Any, tmp_path: Path) -> tuple[Client, dict[str, str]]:
    config = make_config(
        tmp_path / "data",
        runtime={
            "default_target": "docker",
            "docker_host": f"unix://{tmp_path}/no.sock",
            "allow_private_remotes": True,
            "poll_interval": 3600,  # the scheduler's own rounds stay out of the way
        },
    )
    client: Client = await aiohttp_client(create_app(config))
    await register(client)
    return client, bearer((await login(client))["access_token"])


async def _deploy(client: Client, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = await client.post(
        "/api/v1/deployments", json={"source": "remote", "runtime": "static", **body}, headers=auth
    )
    assert resp.status == 202, await resp.text()
    return await _finished(client, auth, (await resp.json())["id"])


async def _finished(client: Client, auth: dict[str, str], deployment_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        resp = await client.get(f"/api/v1/deployments/{deployment_id}", headers=auth)
        body = dict(await resp.json())
        if body["status"] in FINISHED:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{deployment_id} did not finish")


async def test_a_new_head_is_deployed_once(aiohttp_client, tmp_path, git_server):
    client, auth = await _client(aiohttp_client, tmp_path)
    base, port = git_server
    first_sha = await asyncio.to_thread(make_repo, base / "app", {"index.html": "1"})
    await asyncio.to_thread(make_repo, base / "other", {"index.html": "1"})
    remote = f"git://127.0.0.1:{port}/app"
    deployer = client.server.app[DEPLOYER]
    first = await _deploy(client, auth, name="polled", remote=remote, auto_deploy="poll")
    assert first["commit_sha"] == first_sha  # fetched, then the build had no engine
    hooked = await _deploy(
        client, auth, name="hooked", remote=f"git://127.0.0.1:{port}/other"
    )  # auto_deploy webhook (the default): never polled

    assert await poll_services(deployer) == []  # the head is the deployed commit

    new_sha = await asyncio.to_thread(commit, base / "app", {"index.html": "2"})
    await asyncio.to_thread(commit, base / "other", {"index.html": "2"})
    queued = await poll_services(deployer)
    assert [(d.triggered_by, d.commit_sha, d.service_id) for d in queued] == [
        ("poll", new_sha, first["service_id"])
    ]
    assert await poll_services(deployer) == []  # one is queued or running: nothing more
    done = await _finished(client, auth, queued[0].id)
    assert (done["commit_sha"], done["triggered_by"]) == (new_sha, "poll")
    assert done["status"] == "failed"  # no engine to build on
    assert await poll_services(deployer) == []  # a failed head is not retried every round

    resp = await client.get(
        "/api/v1/deployments", params={"service_id": hooked["service_id"]}, headers=auth
    )
    assert [d["triggered_by"] for d in (await resp.json())["items"]] == ["api"]


async def test_an_unreadable_remote_is_logged_and_skipped(
    aiohttp_client, tmp_path, git_server, caplog
):
    client, auth = await _client(aiohttp_client, tmp_path)
    base, port = git_server
    await asyncio.to_thread(make_repo, base / "app", {"index.html": "1"})
    await _deploy(
        client, auth, name="gone", remote=f"git://127.0.0.1:{port}/app", auto_deploy="poll"
    )
    await asyncio.to_thread(shutil.rmtree, base / "app")
    assert await poll_services(client.server.app[DEPLOYER]) == []
    assert "polling service gone: could not list" in caplog.text
