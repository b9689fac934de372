"""API tokens: shown once, stored hashed, usable as a bearer token, revocable, owned."""

import asyncio
import sqlite3

from tests.conftest import bearer, user_headers


async def test_token_lifecycle(client, admin, config):
    resp = await client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin)
    assert resp.status == 201
    created = await resp.json()
    secret = created["token"]
    assert secret.startswith("dpl_") and created["id"].startswith("tok_")
    resp = await client.get("/api/v1/tokens", headers=admin)
    listed = await resp.json()
    assert listed["total"] == 1 and "token" not in listed["items"][0]
    assert secret not in await resp.text()
    # Stored hashed: the secret is nowhere in the database file.
    raw = await asyncio.to_thread(config.db_path.read_bytes)
    assert secret.encode() not in raw
    me = await client.get("/api/v1/auth/me", headers=bearer(secret))
    assert me.status == 200
    resp = await client.get("/api/v1/tokens", headers=admin)
    assert (await resp.json())["items"][0]["last_used_at"] is not None
    assert (await client.delete(f"/api/v1/tokens/{created['id']}", headers=admin)).status == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer(secret))).status == 401


async def test_expired_token_is_refused(client, admin, config):
    resp = await client.post(
        "/api/v1/tokens", json={"name": "old", "expires_in_days": 1}, headers=admin
    )
    created = await resp.json()

    def expire() -> None:
        conn = sqlite3.connect(config.db_path)
        with conn:
            conn.execute("UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00Z'")
        conn.close()

    await asyncio.to_thread(expire)
    assert (await client.get("/api/v1/auth/me", headers=bearer(created["token"]))).status == 401


async def test_other_users_tokens_are_invisible(client, admin):
    created = await (await client.post("/api/v1/tokens", json={"name": "a"}, headers=admin)).json()
    bob = await user_headers(client, admin, "bob@x.io")
    assert (await client.delete(f"/api/v1/tokens/{created['id']}", headers=bob)).status == 404
    assert (await (await client.get("/api/v1/tokens", headers=bob)).json())["total"] == 0


async def test_bad_token_requests(client, admin):
    for body in (
        {},
        {"name": 3},
        {"name": "x", "expires_in_days": 0},
        {"name": "x", "expires_in_days": "7"},
    ):
        resp = await client.post("/api/v1/tokens", json=body, headers=admin)
        assert resp.status == 400, body
