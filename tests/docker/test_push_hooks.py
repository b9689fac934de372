"""Git push deploys end to end: a real repository behind a loopback `git daemon`, GitHub- and
GitLab-shaped hooks sent to the real app, real builds on the Docker engine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.docker.conftest import commit, fetch_text, git, make_repo, wait_done
from tests.hook_payloads import encode, github_headers, github_push, gitlab_headers, gitlab_push

Client = TestClient  # type: ignore[type-arg]


async def _first(client: Client, auth: dict[str, str], remote: str, **extra: Any) -> Any:
    body = {"name": "pushed", "source": "remote", "remote": remote, "runtime": "static", **extra}
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    return await resp.json()


async def _service(client: Client, auth: dict[str, str], service_id: str) -> Any:
    resp = await client.get(f"/api/v1/services/{service_id}", headers=auth)
    return await resp.json()


async def _hook(client: Client, service: Any, body: bytes, headers: dict[str, str]) -> Any:
    resp = await client.post(f"/api/v1/hooks/{service['id']}/push", data=body, headers=headers)
    return resp.status, await resp.json()


async def _deployments(client: Client, auth: dict[str, str], service_id: str) -> list[Any]:
    resp = await client.get("/api/v1/deployments", params={"service_id": service_id}, headers=auth)
    return list((await resp.json())["items"])


async def test_github_and_gitlab_pushes_deploy_exactly_the_pushed_commit(
    dclient: Client, auth: dict[str, str], git_server: tuple[Path, int]
) -> None:
    base, port = git_server
    repo = base / "app"
    await asyncio.to_thread(make_repo, repo, {"index.html": "v1\n"})
    remote = f"git://127.0.0.1:{port}/app"
    first = await wait_done(dclient, auth, (await _first(dclient, auth, remote))["id"])
    assert first["status"] == "live", first
    service = await _service(dclient, auth, first["service_id"])
    secret = service["hook_secret"]

    # Two pushes land before the hook is sent: the hook's commit (v2) is built, not the head.
    sha2 = await asyncio.to_thread(commit, repo, {"index.html": "v2\n"}, "two")
    sha3 = await asyncio.to_thread(commit, repo, {"index.html": "v3\n"}, "three")
    body = encode(github_push("refs/heads/main", first["commit_sha"], sha2, remote))
    status, answer = await _hook(dclient, service, body, github_headers(secret, body))
    assert (status, answer["status"]) == (202, "queued"), answer
    done = await wait_done(dclient, auth, answer["deployment"]["id"])
    assert (done["status"], done["commit_sha"], done["triggered_by"]) == (
        "live",
        sha2,
        "webhook",
    ), done
    service = await _service(dclient, auth, service["id"])
    assert service["current_deployment"]["commit_sha"] == sha2
    assert await fetch_text(service["host_port"]) == (200, "v2\n")

    # GitLab's shape, its token: the head (v3).
    body = encode(gitlab_push("refs/heads/main", sha2, sha3, remote))
    status, answer = await _hook(dclient, service, body, gitlab_headers(secret))
    assert (status, answer["status"]) == (202, "queued"), answer
    done = await wait_done(dclient, auth, answer["deployment"]["id"])
    assert (done["status"], done["commit_sha"], done["triggered_by"]) == (
        "live",
        sha3,
        "webhook",
    ), done
    service = await _service(dclient, auth, service["id"])
    assert await fetch_text(service["host_port"]) == (200, "v3\n")

    # A wrong signature, and a push to another branch: nothing deploys.
    await asyncio.to_thread(git, repo, "checkout", "-q", "-b", "dev")
    dev = await asyncio.to_thread(commit, repo, {"index.html": "dev\n"}, "dev")
    body = encode(github_push("refs/heads/main", sha3, dev, remote))
    status, answer = await _hook(dclient, service, body, github_headers("wrong" + secret, body))
    assert (status, answer["error"]["code"]) == (401, "authentication_required")
    body = encode(github_push("refs/heads/dev", sha3, dev, remote))
    status, answer = await _hook(dclient, service, body, github_headers(secret, body))
    assert (status, answer["status"]) == (202, "ignored"), answer
    assert len(await _deployments(dclient, auth, service["id"])) == 3
    assert await fetch_text(service["host_port"]) == (200, "v3\n")


async def test_a_burst_of_pushes_during_a_build_queues_one_deployment_of_the_newest(
    dclient: Client, auth: dict[str, str], git_server: tuple[Path, int]
) -> None:
    base, port = git_server
    repo = base / "app"
    await asyncio.to_thread(make_repo, repo, {"index.html": "v0\n"})
    remote = f"git://127.0.0.1:{port}/app"
    # A build that takes a while: the pushes arrive while it holds the service's queue.
    running = await _first(dclient, auth, remote, build_cmd="sleep 4")
    deadline = time.monotonic() + 120
    while (await _deployment(dclient, auth, running["id"]))["status"] in ("queued", "fetching"):
        assert time.monotonic() < deadline, "the first deployment never started building"
        await asyncio.sleep(0.1)
    service = await _service(dclient, auth, running["service_id"])

    before, answers = running["commit_sha"] or "0" * 40, []
    for n in (1, 2, 3):
        sha = await asyncio.to_thread(commit, repo, {"index.html": f"push {n}\n"}, f"p{n}")
        body = encode(github_push("refs/heads/main", before, sha, remote))
        status, answer = await _hook(
            dclient, service, body, github_headers(service["hook_secret"], body)
        )
        assert (status, answer["status"]) == (202, "queued"), answer
        answers.append(answer)
        before = sha
    listed = await _deployments(dclient, auth, service["id"])

    assert [a["coalesced"] for a in answers] == [False, True, True]
    assert len({a["deployment"]["id"] for a in answers}) == 1
    queued = [d for d in listed if d["status"] == "queued"]
    assert [(d["triggered_by"], d["commit_sha"]) for d in queued] == [("webhook", before)]

    first = await wait_done(dclient, auth, running["id"])
    assert first["status"] == "live", first
    done = await wait_done(dclient, auth, queued[0]["id"])
    assert (done["status"], done["commit_sha"], done["triggered_by"]) == (
        "live",
        before,
        "webhook",
    ), done
    service = await _service(dclient, auth, service["id"])
    assert await fetch_text(service["host_port"]) == (200, "push 3\n")
    assert len(await _deployments(dclient, auth, service["id"])) == 2


async def _deployment(client: Client, auth: dict[str, str], deployment_id: str) -> Any:
    resp = await client.get(f"/api/v1/deployments/{deployment_id}", headers=auth)
    return await resp.json()
