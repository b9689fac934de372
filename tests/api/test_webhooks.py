"""/api/v1/webhooks CRUD on the real app and a real SQLite file: secrets shown once and
encrypted at rest, a user's own only, and the address guard at create and update."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from dployr.config import Config
from tests.conftest import bearer, login, make_config, register, user_headers

Client = TestClient  # type: ignore[type-arg]
HOOKS = "/api/v1/webhooks"
PUBLIC_URL = "http://93.184.215.14/hook"  # a public literal: nothing is sent at create
REFUSED_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:8080/hook",
    "http://[::1]/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one number
    "http://0x7f.1/hook",  # 127.0.0.1 in hex, short form
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
    "http://[fd00:ec2::254]/",  # the AWS metadata service over IPv6
    "http://10.0.0.5/hook",
    "http://192.168.1.1/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://localhost:9000/hook",  # a name that resolves to loopback
    "file:///etc/passwd",
    "gopher://93.184.215.14:70/_x",
    "ftp://93.184.215.14/x",
    "http://user:pw@93.184.215.14/hook",
    "http:///nohost",
]


def _stored_secret(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("SELECT secret_enc FROM webhooks").fetchone()[0])


async def _create(client: Client, headers: dict[str, str], **body: Any) -> Any:
    return await client.post(HOOKS, json={"url": PUBLIC_URL, **body}, headers=headers)


async def test_create_generates_a_secret_shown_once(
    client: Client, admin: dict[str, str], config: Config
) -> None:
    resp = await _create(client, admin, events=["deployment.succeeded"])
    assert resp.status == 201, await resp.text()
    hook = await resp.json()
    assert hook["id"].startswith("whk_") and hook["active"] is True
    assert hook["events"] == ["deployment.succeeded"]
    secret = hook["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    got = await (await client.get(f"{HOOKS}/{hook['id']}", headers=admin)).json()
    assert "secret" not in got and got["url"] == PUBLIC_URL
    listed = await (await client.get(HOOKS, headers=admin)).json()
    assert listed["total"] == 1 and "secret" not in listed["items"][0]
    # Encrypted at rest: the secret is nowhere in the database file.
    stored = await asyncio.to_thread(_stored_secret, config.db_path)
    assert secret not in stored and secret[6:] not in stored


async def test_a_given_secret_needs_24_bytes(client: Client, admin: dict[str, str]) -> None:
    resp = await _create(client, admin, secret="x" * 23)
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["field"] == "secret"
    resp = await _create(client, admin, secret="y" * 24)
    assert resp.status == 201 and (await resp.json())["secret"] == "y" * 24
    assert (await _create(client, admin, events=[])).status == 400
    assert (await _create(client, admin, events=["nope"])).status == 400


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_refused_addresses_are_a_400_on_url(
    client: Client, admin: dict[str, str], url: str
) -> None:
    resp = await _create(client, admin, url=url)
    assert resp.status == 400, url
    error = (await resp.json())["error"]
    assert error["code"] == "validation_error" and error["details"]["field"] == "url"
    assert "does not resolve" not in error["details"]["reason"]  # refused for what it is


async def test_update_checks_the_url_and_sets_active(client: Client, admin: dict[str, str]) -> None:
    hook = await (await _create(client, admin)).json()
    path = f"{HOOKS}/{hook['id']}"
    resp = await client.put(path, json={"url": "http://127.0.0.1/x"}, headers=admin)
    assert resp.status == 400 and (await resp.json())["error"]["details"]["field"] == "url"
    resp = await client.put(path, json={"active": False, "events": ["*"]}, headers=admin)
    assert resp.status == 200
    body = await resp.json()
    assert body["active"] is False and body["events"] == ["*"] and body["url"] == PUBLIC_URL
    assert "secret" not in body
    resp = await client.put(path, json={"secret": "short"}, headers=admin)
    assert (await resp.json())["error"]["details"]["field"] == "secret"
    assert (await client.delete(path, headers=admin)).status == 204
    assert (await client.get(path, headers=admin)).status == 404


async def test_another_users_webhook_is_a_404(client: Client, admin: dict[str, str]) -> None:
    hook = await (await _create(client, admin)).json()
    other = await user_headers(client, admin, "bob@example.com")
    path = f"{HOOKS}/{hook['id']}"
    assert (await client.get(path, headers=other)).status == 404
    assert (await client.put(path, json={"active": False}, headers=other)).status == 404
    assert (await client.delete(path, headers=other)).status == 404
    assert (await (await client.get(HOOKS, headers=other)).json())["total"] == 0


async def test_allow_private_lets_loopback_in_but_never_metadata(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    config = make_config(tmp_path / "data", webhooks={"allow_private": True})
    client = await aiohttp_client(create_app(config))
    await register(client)
    admin = bearer((await login(client))["access_token"])
    assert (await _create(client, admin, url="http://localhost:9/x")).status == 201
    assert (await _create(client, admin, url="http://[::1]:9/x")).status == 201
    for url in ("http://169.254.169.254/", "http://[fd00:ec2::254]/", "gopher://127.0.0.1/"):
        assert (await _create(client, admin, url=url)).status == 400, url
