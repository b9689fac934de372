"""A `registry` credential (SPEC §15): {username, password}, stored encrypted, never shown; not
a git credential (a deployment naming one is a 400); read back by id for [swarm]."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.errors import DployrError
from dployr.keys import BOX, DB
from dployr.store import credentials

Client = TestClient  # type: ignore[type-arg]
LOGIN = {"username": "deployer", "password": "pa ss:w0rd"}


async def _create(client: Client, headers: dict[str, str], **body: Any) -> tuple[int, Any]:
    resp = await client.post("/api/v1/credentials", json=body, headers=headers)
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"username": "deployer"}, "data.password"),
        ({"password": "x"}, "data.username"),
        ({"username": "", "password": "x"}, "data.username"),
        ({"username": "deployer", "password": ""}, "data.password"),
        ({"username": "two words", "password": "x"}, "data.username"),
        ({"username": "deployer", "password": "line\nbreak"}, "data.password"),
        ({"username": "deployer", "password": 5}, "data.password"),
        ({"username": "deployer", "password": "x", "token": "t"}, "data.token"),
        ({"token": "t"}, "data.username"),
    ],
)
async def test_a_registry_login_takes_a_username_and_a_password_only(
    client: Client, admin: dict[str, str], data: dict[str, Any], field: str
):
    status, body = await _create(client, admin, type="registry", name="hub", data=data)
    assert status == 400, body
    assert body["error"]["details"]["field"] == field, body


async def test_a_token_still_takes_its_token_only(client: Client, admin: dict[str, str]):
    status, body = await _create(client, admin, type="token", name="gh", data=LOGIN)
    assert status == 400, body
    assert body["error"]["details"]["field"] == "data.token", body


async def test_stored_encrypted_never_shown_and_not_for_git(client: Client, admin: dict[str, str]):
    status, made = await _create(client, admin, type="registry", name="hub", data=LOGIN)
    assert status == 201, made
    assert made["type"] == "registry" and set(made) == {"id", "owner_id", "type", "name",
                                                        "created_at"}  # fmt: skip
    listed = await (await client.get("/api/v1/credentials", headers=admin)).text()
    assert "pa ss:w0rd" not in listed and "deployer" not in listed and made["id"] in listed
    row = await credentials.get_credential(client.app[DB], made["id"], None)
    assert row is not None and "pa ss" not in row.secret_enc and "deployer" not in row.secret_enc
    # The swarm target reads it by id, whoever owns it (the config names it).
    login = await credentials.registry_login(client.app[DB], client.app[BOX], made["id"])
    assert (login.username, login.password) == ("deployer", "pa ss:w0rd")
    assert "pa ss" not in repr(login)
    # A deployment's credential_id is for git: a registry login is refused, as is a GET of
    # the login for a git credential.
    resp = await client.post(
        "/api/v1/deployments",
        json={"name": "web", "source": "remote", "remote": "https://example.com/a/b.git",
              "runtime": "python", "credential_id": made["id"]},
        headers=admin,
    )  # fmt: skip
    body = await resp.json()
    assert resp.status == 400, body
    assert body["error"]["details"]["field"] == "credential_id"
    assert "registry login" in body["error"]["message"]
    status, token = await _create(client, admin, type="token", name="gh", data={"token": "t0k"})
    assert status == 201, token
    with pytest.raises(DployrError, match="is a token, not a registry login"):
        await credentials.registry_login(client.app[DB], client.app[BOX], token["id"])
    with pytest.raises(DployrError, match="not found"):
        await credentials.registry_login(client.app[DB], client.app[BOX], "crd_nothing")
