"""A secret stays secret: an upsert without `secret` keeps the flag, through the env endpoint
and a deployment's `env`, and the deployment's snapshot masks and encrypts it. Deployments are
accepted against an engine socket where nothing listens: no container is needed to check."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from dployr.app import create_app
from tests.conftest import bearer, login, make_config, register

Client = TestClient  # type: ignore[type-arg]
MASK = "********"


async def _client(aiohttp_client: Any, tmp_path: Path) -> tuple[Client, dict[str, str]]:
    config = make_config(
        tmp_path / "data",
        runtime={"default_target": "docker", "docker_host": f"unix://{tmp_path}/no.sock"},
    )
    client: Client = await aiohttp_client(create_app(config))
    await register(client)
    return client, bearer((await login(client))["access_token"])


async def _deploy(client: Client, auth: dict[str, str], env: dict[str, Any]) -> dict[str, Any]:
    body = {"name": "api", "source": "image", "image": "alpine:3", "env": env}
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    return dict(await resp.json())


async def _env(client: Client, auth: dict[str, str], service_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/services/{service_id}/env", headers=auth)
    return {v["key"]: v for v in (await resp.json())["env"]}


def _stored_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.glob("dployr.db*"))


async def test_an_upsert_without_secret_keeps_the_flag(aiohttp_client: Any, tmp_path: Path):
    client, auth = await _client(aiohttp_client, tmp_path)
    first = await _deploy(client, auth, {"MODE": "prod"})
    service = first["service_id"]
    url = f"/api/v1/services/{service}/env"
    resp = await client.post(
        url, json={"key": "API_KEY", "value": "s3cr3t-one", "secret": True}, headers=auth
    )
    assert (await resp.json())["secret"] is True

    # The env endpoint without `secret`: still secret, still masked.
    resp = await client.post(url, json={"key": "API_KEY", "value": "s3cr3t-two"}, headers=auth)
    assert resp.status == 200
    assert await resp.json() == {**await resp.json(), "value": MASK, "secret": True}

    # A deployment's env without a flag: still secret, masked in the deployment too.
    second = await _deploy(client, auth, {"API_KEY": "s3cr3t-three", "MODE": "staging"})
    assert second["env"] == {"API_KEY": MASK, "MODE": "staging"}
    env = await _env(client, auth, service)
    assert env["API_KEY"]["secret"] is True and env["API_KEY"]["value"] == MASK
    assert env["MODE"] == {**env["MODE"], "secret": False, "value": "staging"}

    # PUT is a deployment request too.
    resp = await client.put(
        f"/api/v1/deployments/{second['id']}",
        json={"env": {"API_KEY": "s3cr3t-four"}},
        headers=auth,
    )
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["env"]["API_KEY"] == MASK
    got = await client.get(f"/api/v1/deployments/{second['id']}", headers=auth)
    assert (await got.json())["env"]["API_KEY"] == MASK

    # Nowhere in the database file (nor its WAL) is a secret value in plain text.
    stored = await asyncio.to_thread(_stored_bytes, tmp_path / "data")
    for value in ("s3cr3t-one", "s3cr3t-two", "s3cr3t-three", "s3cr3t-four"):
        assert value.encode() not in stored, value
    assert b"staging" in stored  # (the check reads what is there)


async def test_a_deployment_may_mark_and_unmark_secrets(aiohttp_client: Any, tmp_path: Path):
    client, auth = await _client(aiohttp_client, tmp_path)
    first = await _deploy(client, auth, {"TOKEN": {"value": "tok-123456", "secret": True}})
    assert first["env"] == {"TOKEN": MASK}
    env = await _env(client, auth, first["service_id"])
    assert env["TOKEN"]["secret"] is True
    second = await _deploy(client, auth, {"TOKEN": {"value": "now-public", "secret": False}})
    assert second["env"] == {"TOKEN": "now-public"}
    third = await _deploy(client, auth, {"TOKEN": {"value": "still-public"}})
    assert third["env"] == {"TOKEN": "still-public"}
    stored = await asyncio.to_thread(_stored_bytes, tmp_path / "data")
    assert b"tok-123456" not in stored


async def test_bad_env_entries_name_the_key(aiohttp_client: Any, tmp_path: Path):
    client, auth = await _client(aiohttp_client, tmp_path)
    for env in (
        {"TOKEN": {"secret": True}},
        {"TOKEN": {"value": "x", "secret": "yes"}},
        {"TOKEN": {"value": "x", "extra": 1}},
        {"TOKEN": 5},
    ):
        body = {"name": "api", "source": "image", "image": "alpine:3", "env": env}
        resp = await client.post("/api/v1/deployments", json=body, headers=auth)
        assert resp.status == 400, (env, await resp.text())
        assert (await resp.json())["error"]["details"]["field"] == "env.TOKEN"
