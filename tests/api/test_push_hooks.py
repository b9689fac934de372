"""POST /api/v1/hooks/{id}/push on the real app: GitHub and GitLab verification, what is
ignored, coalescing, and the rate limit that counts only failures. The engine socket has
nothing behind it: no container is needed for any of this."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient

from dployr.app import create_app
from dployr.keys import DEPLOYER
from tests.conftest import bearer, login, make_config, register
from tests.hook_payloads import (
    ZERO,
    encode,
    github_headers,
    github_ping,
    github_push,
    gitlab_headers,
    gitlab_push,
)

Client = TestClient  # type: ignore[type-arg]
REMOTE = "git://127.0.0.1:9/app"  # discard port: the fetch fails, the hook is what is tested
SHA1, SHA2, SHA3 = "1" * 40, "2" * 40, "3" * 40


async def _client(aiohttp_client: Any, tmp_path: Path, **limits: int) -> tuple[Client, Any]:
    config = make_config(
        tmp_path / "data",
        runtime={
            "default_target": "docker",
            "docker_host": f"unix://{tmp_path}/no.sock",
            "allow_private_remotes": True,
        },
        **({"rate_limit": limits} if limits else {}),
    )
    client: Client = await aiohttp_client(create_app(config))
    await register(client)
    return client, bearer((await login(client))["access_token"])


async def _service(client: Client, auth: dict[str, str], **extra: Any) -> dict[str, Any]:
    body = {"name": "web", "source": "remote", "remote": REMOTE, "runtime": "static", **extra}
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    resp = await client.get(f"/api/v1/services/{(await resp.json())['service_id']}", headers=auth)
    return dict(await resp.json())


def _url(service: dict[str, Any]) -> str:
    return f"/api/v1/hooks/{service['id']}/push"


async def _github(client: Client, service: dict[str, Any], ref: str, after: str, **kw: Any) -> Any:
    body = encode(github_push(ref, SHA1, after, REMOTE))
    headers = github_headers(kw.get("secret", service["hook_secret"]), body)
    return await client.post(_url(service), data=body, headers=headers)


async def test_a_signed_github_push_to_the_branch_queues_that_commit(aiohttp_client, tmp_path):
    client, auth = await _client(aiohttp_client, tmp_path)
    service = await _service(client, auth)
    assert service["hook_url"].endswith(_url(service))

    resp = await _github(client, service, "refs/heads/main", SHA2)
    assert resp.status == 202, await resp.text()
    answer = await resp.json()
    assert answer["status"] == "queued" and answer["coalesced"] is False
    deployment = answer["deployment"]
    assert deployment["triggered_by"] == "webhook"
    assert deployment["commit_sha"] == SHA2
    assert deployment["service_id"] == service["id"]
    assert (deployment["remote"], deployment["branch"]) == (REMOTE, None)
    resp = await client.get(f"/api/v1/deployments/{deployment['id']}", headers=auth)
    assert (await resp.json())["triggered_by"] == "webhook"


async def test_a_github_form_encoded_push_is_read_too(aiohttp_client, tmp_path):
    client, auth = await _client(aiohttp_client, tmp_path)
    service = await _service(client, auth)
    payload = json.dumps(github_push("refs/heads/main", SHA1, SHA2, REMOTE))
    body = urlencode({"payload": payload}).encode()
    headers = {
        **github_headers(service["hook_secret"], body),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    resp = await client.post(_url(service), data=body, headers=headers)
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["deployment"]["commit_sha"] == SHA2


async def test_a_gitlab_push_with_the_token_queues_its_checkout_sha(aiohttp_client, tmp_path):
    client, auth = await _client(aiohttp_client, tmp_path)
    service = await _service(client, auth, branch="release")
    body = encode(gitlab_push("refs/heads/release", SHA1, SHA3, REMOTE))
    resp = await client.post(
        _url(service), data=body, headers=gitlab_headers(service["hook_secret"])
    )
    assert resp.status == 202, await resp.text()
    deployment = (await resp.json())["deployment"]
    assert (deployment["commit_sha"], deployment["triggered_by"]) == (SHA3, "webhook")
    assert deployment["branch"] == "release"


async def test_unverified_hooks_answer_401_whether_or_not_the_service_exists(
    aiohttp_client, tmp_path
):
    client, auth = await _client(aiohttp_client, tmp_path)
    service = await _service(client, auth)
    body = encode(github_push("refs/heads/main", SHA1, SHA2, REMOTE))
    good = github_headers(service["hook_secret"], body)
    tries = {
        "wrong secret": github_headers("not-the-secret", body),
        "no signature": {k: v for k, v in good.items() if k != "X-Hub-Signature-256"},
        "sha1 only": {
            **{k: v for k, v in good.items() if k != "X-Hub-Signature-256"},
            "X-Hub-Signature": "sha1=" + "0" * 40,
        },
        "tampered body": good,
        "wrong gitlab token": gitlab_headers(service["hook_secret"] + "x"),
        "empty gitlab token": gitlab_headers(""),
    }
    answers = []
    for name, headers in tries.items():
        sent = body.replace(SHA2.encode(), SHA3.encode()) if name == "tampered body" else body
        resp = await client.post(_url(service), data=sent, headers=headers)
        assert resp.status == 401, name
        answers.append(await resp.json())
    # An unknown service, even with "its" secret: the same 401, nothing tells it is missing.
    resp = await client.post("/api/v1/hooks/svc_nope/push", data=body, headers=good)
    assert resp.status == 401
    answers.append(await resp.json())
    assert all(a == answers[0] for a in answers)
    assert answers[0]["error"]["code"] == "authentication_required"
    resp = await client.get("/api/v1/deployments", headers=auth)
    assert [d["triggered_by"] for d in (await resp.json())["items"]] == ["api"]


async def test_what_a_verified_hook_does_not_deploy_is_202_ignored(aiohttp_client, tmp_path):
    client, auth = await _client(aiohttp_client, tmp_path)
    service = await _service(client, auth)
    secret = service["hook_secret"]

    resp = await _github(client, service, "refs/heads/feature", SHA2)
    assert resp.status == 202
    answer = await resp.json()
    assert answer["status"] == "ignored" and "refs/heads/main" in answer["reason"]

    resp = await _github(client, service, "refs/tags/v1.0", SHA2)
    assert (resp.status, (await resp.json())["status"]) == (202, "ignored")

    resp = await _github(client, service, "refs/heads/main", ZERO)  # the branch was deleted
    assert (resp.status, (await resp.json())["status"]) == (202, "ignored")

    body = encode(gitlab_push("refs/heads/main", SHA1, SHA2, REMOTE))
    resp = await client.post(
        _url(service), data=body, headers=gitlab_headers(secret, "Tag Push Hook")
    )
    answer = await resp.json()
    assert (resp.status, answer["status"]) == (202, "ignored")
    assert "Tag Push Hook" in answer["reason"]

    body = encode(github_ping())
    resp = await client.post(_url(service), data=body, headers=github_headers(secret, body, "ping"))
    assert resp.status == 200
    assert await resp.json() == {"status": "pong", "service_id": service["id"]}

    resp = await client.get("/api/v1/deployments", headers=auth)
    assert [d["triggered_by"] for d in (await resp.json())["items"]] == ["api"]


async def test_auto_deploy_off_ignores_pushes_and_says_why(aiohttp_client, tmp_path):
    client, auth = await _client(aiohttp_client, tmp_path)
    service = await _service(client, auth, auto_deploy="off")
    assert service["auto_deploy"] == "off"
    resp = await _github(client, service, "refs/heads/main", SHA2)
    assert resp.status == 202
    assert await resp.json() == {
        "status": "ignored",
        "reason": "auto_deploy is off for this service",
    }


async def test_a_malformed_verified_push_is_a_400_naming_the_field(aiohttp_client, tmp_path):
    client, auth = await _client(aiohttp_client, tmp_path)
    service = await _service(client, auth)
    resp = await _github(client, service, "refs/heads/main", "not-a-sha")
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["field"] == "after"
    body = b"{not json"
    resp = await client.post(
        _url(service), data=body, headers=github_headers(service["hook_secret"], body)
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["field"] == "body"


async def test_a_burst_of_pushes_coalesces_into_one_queued_deployment(aiohttp_client, tmp_path):
    client, auth = await _client(aiohttp_client, tmp_path)
    service = await _service(client, auth)
    deployer = client.server.app[DEPLOYER]
    # Hold the service's one-at-a-time lock, as a running deployment does: pushes queue.
    async with deployer.service_lock(service["id"]):
        answers = []
        for sha in (SHA1, SHA2, SHA3):
            resp = await _github(client, service, "refs/heads/main", sha)
            assert resp.status == 202
            answers.append(await resp.json())
        resp = await client.get(
            "/api/v1/deployments", params={"service_id": service["id"]}, headers=auth
        )
        listed = (await resp.json())["items"]
    assert [a["coalesced"] for a in answers] == [False, True, True]
    assert len({a["deployment"]["id"] for a in answers}) == 1
    assert answers[-1]["deployment"]["commit_sha"] == SHA3
    hooked = [d for d in listed if d["triggered_by"] == "webhook"]
    assert [(d["status"], d["commit_sha"]) for d in hooked] == [("queued", SHA3)]


async def test_only_failed_verifications_count_against_the_address(aiohttp_client, tmp_path):
    client, auth = await _client(
        aiohttp_client,
        tmp_path,
        authenticated_per_hour=1000,
        anonymous_per_hour=5,  # register and login take 2 of them
        login_per_15min=100,
    )
    service = await _service(client, auth)
    for _ in range(6):  # verified: never throttled
        resp = await _github(client, service, "refs/heads/other", SHA2)
        assert resp.status == 202
    statuses = []
    for _ in range(4):  # an address guessing the secret is throttled
        resp = await _github(client, service, "refs/heads/main", SHA2, secret="wrong")
        statuses.append(resp.status)
    assert statuses == [401, 401, 401, 429]
    assert resp.headers["Retry-After"]
    # ... and an unknown service is no way around it.
    resp = await client.post("/api/v1/hooks/svc_nope/push", data=b"{}", headers={})
    assert resp.status == 429
