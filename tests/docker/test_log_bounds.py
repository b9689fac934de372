"""Bounded logs on the real engine: deployment logs in pages, service logs capped in bytes,
log-follow streams capped per user, and builds that never wait behind log followers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from dployr.api.deployments import LOG_PAGE_BYTES
from dployr.api.services import MAX_LOG_BYTES
from dployr.app import create_app
from dployr.keys import DB
from dployr.store import deployments
from tests.conftest import login, register, user_headers
from tests.docker.conftest import STATIC_APP, deploy_config, make_repo, wait_done

READY = 'echo ready; exec httpd -f -p "$PORT" -h /app'
# 3,000 lines of about 1,000 bytes (3 MB) before the server starts.
FLOOD = (
    'L=$(printf "%01000d" 0); i=0; while [ $i -lt 3000 ]; do echo "$i $L"; i=$((i+1)); done; '
    'exec httpd -f -p "$PORT" -h /app'
)


def static(repo: Path, name: str = "web", **extra: Any) -> dict[str, Any]:
    return {"name": name, "source": "local", "path": str(repo), "runtime": "static", **extra}


async def deploy_live(
    client: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    body: dict[str, Any],
) -> dict[str, Any]:
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    done = await wait_done(client, auth, (await resp.json())["id"])
    assert done["status"] == "live", done
    return done


@pytest.fixture
def staller() -> Iterator[int]:
    """A port that completes TCP handshakes (the kernel's backlog) and never answers: a git
    fetch from it waits until the listener closes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


@pytest.fixture
async def follower() -> AsyncIterator[aiohttp.ClientSession]:
    """A client with no connection limit of its own, to hold many streams open at once."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def test_deployment_log_comes_in_pages(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    live = await deploy_live(dclient, auth, static(repo))
    url = f"/api/v1/deployments/{live['id']}/logs"
    whole = await (await dclient.get(url, headers=auth)).json()
    assert whole["status"] == "live" and whole["has_more"] is False
    assert whole["next_after"] == whole["logs"][-1]["seq"]
    seen: list[int] = []
    after = 0
    while True:
        page = await (await dclient.get(f"{url}?after={after}&limit=4", headers=auth)).json()
        assert len(page["logs"]) <= 4
        seen += [line["seq"] for line in page["logs"]]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert seen == [line["seq"] for line in whole["logs"]]
    end = await (await dclient.get(f"{url}?after={after}", headers=auth)).json()
    assert end["logs"] == [] and end["next_after"] == after and end["has_more"] is False

    # A big log (3 MB more) still comes a bounded page at a time, however large the limit.
    last = whole["logs"][-1]["seq"]
    extra = [(last + n, "2026-01-01T00:00:00Z", "z" * 1000) for n in range(1, 3001)]
    await deployments.append_log(dclient.app[DB], live["id"], extra)
    page = await (await dclient.get(f"{url}?after={last}&limit=100000", headers=auth)).json()
    size = sum(len(line["message"]) for line in page["logs"])
    assert LOG_PAGE_BYTES <= size <= LOG_PAGE_BYTES + 1000 and page["has_more"] is True
    assert page["next_after"] == page["logs"][-1]["seq"]

    for query, field in (("after=-1", "after"), ("after=x", "after"), ("limit=0", "limit")):
        resp = await dclient.get(f"{url}?{query}", headers=auth)
        assert resp.status == 400, query
        assert (await resp.json())["error"]["details"]["field"] == field


async def test_service_logs_stop_at_their_byte_cap(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    live = await deploy_live(dclient, auth, static(repo, run_cmd=FLOOD))
    url = f"/api/v1/services/{live['service_id']}/logs"
    body = await (await dclient.get(f"{url}?tail=10000", headers=auth)).json()
    size = sum(len(line["message"].encode()) + 1 for line in body["logs"])
    assert body["truncated"] is True and body["has_more"] is True
    assert MAX_LOG_BYTES - 1100 <= size <= MAX_LOG_BYTES
    # The oldest lines of the window come first; `since` continues from the last one.
    assert body["logs"][0]["message"].startswith("0 ")
    small = await (await dclient.get(f"{url}?tail=5", headers=auth)).json()
    assert len(small["logs"]) == 5 and small["truncated"] is False and small["has_more"] is True


async def test_follow_streams_are_capped_per_user(
    aiohttp_client: Any,
    docker_engine: None,
    data_dir: Path,
    tmp_path: Path,
    staller: int,
    follower: aiohttp.ClientSession,
) -> None:
    config = deploy_config(data_dir)
    config = dataclasses.replace(
        config, server=dataclasses.replace(config.server, follow_streams_per_user=3)
    )
    client = await aiohttp_client(create_app(config))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    live = await deploy_live(client, auth, static(repo, run_cmd=READY))
    service_url = str(client.make_url(f"/api/v1/services/{live['service_id']}/logs"))
    # A deployment that stays in `fetching`: its log follow stays open.
    stuck = {"name": "stuck", "source": "remote", "runtime": "static",
             "remote": f"git://127.0.0.1:{staller}/app.git"}  # fmt: skip
    resp = await client.post("/api/v1/deployments", json=stuck, headers=auth)
    assert resp.status == 202, await resp.text()
    stuck_id = (await resp.json())["id"]
    deployment_url = str(client.make_url(f"/api/v1/deployments/{stuck_id}/logs"))

    streams = []
    for url in (service_url, service_url, deployment_url):
        resp = await follower.get(f"{url}?follow=true&tail=1", headers=auth)
        assert resp.status == 200
        streams.append(resp)
    first = json.loads(await asyncio.wait_for(streams[0].content.readline(), 30))
    assert first["message"] == "ready"
    for url in (service_url, deployment_url):
        resp = await follower.get(f"{url}?follow=true", headers=auth)
        assert resp.status == 429
        error = (await resp.json())["error"]
        assert error["code"] == "rate_limited" and "3 log streams" in error["message"]
        assert resp.headers["Retry-After"]
    # Not following, and another user's streams, are not counted.
    assert (await follower.get(f"{service_url}?tail=1", headers=auth)).status == 200
    other = await user_headers(client, auth, "other@example.com")
    resp = await follower.get(f"{deployment_url}?follow=true", headers=other)
    assert resp.status == 404  # not theirs; the cap did not answer first

    # A client that goes away gives its slot back, from either kind of stream.
    async def reopen(url: str) -> None:
        for _ in range(100):
            resp = await follower.get(f"{url}?follow=true&tail=1", headers=auth)
            if resp.status == 200:
                streams.append(resp)
                return
            assert resp.status == 429
            await asyncio.sleep(0.1)
        raise AssertionError(f"no slot came back for {url}")

    streams.pop(0).close()  # a service log follow
    await reopen(service_url)
    streams.pop(1).close()  # the deployment log follow
    await reopen(deployment_url)
    assert len(streams) == 3
    for stream in streams:
        stream.close()
    assert (await client.delete(f"/api/v1/deployments/{stuck_id}", headers=auth)).status == 204


async def test_builds_run_while_log_follows_hold_every_log_connection(
    aiohttp_client: Any,
    docker_engine: None,
    data_dir: Path,
    tmp_path: Path,
    follower: aiohttp.ClientSession,
) -> None:
    config = deploy_config(data_dir)
    config = dataclasses.replace(
        config, server=dataclasses.replace(config.server, follow_streams_per_user=1000)
    )
    client = await aiohttp_client(create_app(config))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    live = await deploy_live(client, auth, static(repo, run_cmd=READY))
    url = str(client.make_url(f"/api/v1/services/{live['service_id']}/logs?follow=true&tail=1"))

    async def follow() -> aiohttp.ClientResponse:
        resp = await follower.get(url, headers=auth)
        assert resp.status == 200
        # Its first line is there: the stream holds its connection to the engine.
        line = json.loads(await asyncio.wait_for(resp.content.readline(), 60))
        assert line["message"] == "ready"
        return resp

    # As many followers as the engine connections aiohttp pools by default (100).
    streams = await asyncio.gather(*(follow() for _ in range(100)))
    try:
        resp = await client.post("/api/v1/deployments", json=static(repo), headers=auth)
        assert resp.status == 202
        done = await wait_done(client, auth, (await resp.json())["id"], limit=120)
        assert done["status"] == "live", done
        stages = {stage["name"]: stage["status"] for stage in done["stages"]}
        assert stages["building"] == "succeeded"
    finally:
        for stream in streams:
            stream.close()
