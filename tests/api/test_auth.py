"""Registration, login, refresh rotation with reuse detection, logout, token checks, limits."""

import asyncio
import time

import jwt
import pytest

from dployr.app import create_app
from tests.conftest import PASSWORD, bearer, login, make_config, register


async def test_first_user_is_admin_then_registration_closes(client):
    first = await register(client)
    assert first["role"] == "admin" and first["id"].startswith("usr_")
    assert "password" not in str(first) and "hash" not in str(first)
    resp = await client.post(
        "/api/v1/auth/register", json={"name": "B", "email": "b@x.io", "password": PASSWORD}
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"


async def test_admin_registers_others_as_users(client, admin):
    resp = await client.post(
        "/api/v1/auth/register",
        json={"name": "B", "email": "B@X.io", "password": PASSWORD, "username": "bee"},
        headers=admin,
    )
    assert resp.status == 201
    user = await resp.json()
    assert (user["role"], user["email"], user["username"]) == ("user", "b@x.io", "bee")


async def test_open_registration(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(make_config(tmp_path, auth={"registration": "open"})))
    await register(client)
    second = await register(client, email="b@x.io")
    assert second["role"] == "user"


async def test_duplicate_email_is_a_conflict(client, admin):
    resp = await client.post(
        "/api/v1/auth/register",
        json={"name": "A", "email": "ADMIN@example.com", "password": PASSWORD},
        headers=admin,
    )
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short", "at least 8"), ("é" * 40, "72 bytes"), ("a" * 100, "at most 72")],
)
async def test_password_rules_on_register(client, password, reason):
    resp = await client.post(
        "/api/v1/auth/register", json={"name": "A", "email": "a@x.io", "password": password}
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["details"]["field"] == "password"
    assert reason in body["error"]["details"]["reason"]


async def test_login_failures_look_the_same(client):
    await register(client)
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": "admin@example.com", "password": "nope-nope"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "ghost@example.com", "password": "nope-nope"}
    )
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()


async def test_login_returns_a_token_pair(client):
    await register(client)
    pair = await login(client)
    assert pair["token_type"] == "bearer" and pair["expires_in"] == 900
    assert pair["user"]["last_login"] is not None
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert {"sub", "exp", "iat", "jti", "typ"} <= set(claims) and claims["typ"] == "access"
    resp = await client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))
    assert (await resp.json())["email"] == "admin@example.com"


async def test_refresh_rotates_and_reuse_revokes_the_family(client):
    await register(client)
    first = await login(client)
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert resp.status == 200
    second = await resp.json()
    assert second["refresh_token"] != first["refresh_token"]
    # The spent token again: reuse → 401 and the whole family dies, the new pair included.
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_token"
    resp = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert resp.status == 401
    resp = await client.get("/api/v1/auth/me", headers=bearer(second["access_token"]))
    assert resp.status == 401
    # Another session of the same user is untouched.
    resp = await client.get(
        "/api/v1/auth/me", headers=bearer((await login(client))["access_token"])
    )
    assert resp.status == 200


async def test_unknown_refresh_token(client):
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": "nope"})
    assert resp.status == 401


async def test_logout_revokes_access_and_refresh(client):
    await register(client)
    pair = await login(client)
    resp = await client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))
    assert resp.status == 204
    resp = await client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_token"
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert resp.status == 401


def forged(config_key: bytes | None, **claims):
    now = int(time.time())
    payload = {
        "sub": "usr_x",
        "jti": "j",
        "sid": "s",
        "iat": now,
        "exp": now + 60,
        "typ": "access",
    } | claims
    if config_key is None:
        return jwt.encode(payload, None, algorithm="none")
    return jwt.encode(payload, config_key, algorithm="HS256")


async def test_bad_tokens_are_invalid_token(client, config):
    user = await register(client)
    key = await asyncio.to_thread((config.data_path / "secrets" / "jwt.key").read_bytes)
    pair = await login(client)
    cases = {
        "alg-none": forged(None, sub=user["id"]),
        "other-key": forged(b"not the key" * 6, sub=user["id"]),
        "expired": forged(key, sub=user["id"], exp=int(time.time()) - 10),
        "refresh-as-access": pair["refresh_token"],
        "garbage": "abc.def.ghi",
        "unknown-api-token": "dpl_" + "x" * 40,
    }
    for name, token in cases.items():
        resp = await client.get("/api/v1/projects", headers=bearer(token))
        assert resp.status == 401, name
        assert (await resp.json())["error"]["code"] == "invalid_token", name
    resp = await client.post(
        "/api/v1/auth/register",
        json={"name": "B", "email": "b@x.io", "password": PASSWORD},
        headers=bearer(cases["expired"]),
    )
    assert resp.status == 401  # not "registration closed": the token is what is wrong
    resp = await client.get("/api/v1/projects", headers={"Authorization": "Basic abc"})
    assert resp.status == 401
    resp = await client.get("/api/v1/projects")
    assert (await resp.json())["error"]["code"] == "authentication_required"


async def test_login_brute_force_is_limited(aiohttp_client, tmp_path):
    config = make_config(tmp_path, rate_limit={"login_per_15min": 5, "anonymous_per_hour": 1000})
    client = await aiohttp_client(create_app(config))
    await register(client)
    statuses = []
    for _ in range(7):
        resp = await client.post(
            "/api/v1/auth/login", json={"email": "admin@example.com", "password": "guess-guess"}
        )
        statuses.append(resp.status)
    assert statuses == [401] * 5 + [429] * 2
    assert int(resp.headers["Retry-After"]) > 0
    assert resp.headers["X-RateLimit-Remaining"] == "0"
    assert (await resp.json())["error"]["code"] == "rate_limited"
    # Even the right password waits now: the limit is per address and e-mail.
    resp = await client.post(
        "/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}
    )
    assert resp.status == 429


async def test_anonymous_and_authenticated_limits(aiohttp_client, tmp_path):
    config = make_config(
        tmp_path, rate_limit={"anonymous_per_hour": 3, "authenticated_per_hour": 4}
    )
    client = await aiohttp_client(create_app(config))
    await register(client)  # anonymous 1
    token = (await login(client))["access_token"]  # anonymous 2
    resp = await client.get("/api/v1/info")  # anonymous 3
    assert resp.headers["X-RateLimit-Remaining"] == "0"
    resp = await client.get("/api/v1/info")
    assert resp.status == 429 and "Retry-After" in resp.headers
    for remaining in (3, 2, 1, 0):
        resp = await client.get("/api/v1/projects", headers=bearer(token))
        assert resp.headers["X-RateLimit-Limit"] == "4"
        assert resp.headers["X-RateLimit-Remaining"] == str(remaining)
    resp = await client.get("/api/v1/projects", headers=bearer(token))
    assert resp.status == 429
    # Health is never limited.
    assert (await client.get("/health")).status == 200


async def test_disabled_user_is_locked_out(client, admin):
    await register(client, email="b@x.io", headers=admin)
    pair = await login(client, "b@x.io")
    user_id = pair["user"]["id"]
    resp = await client.patch(f"/api/v1/users/{user_id}", json={"is_active": False}, headers=admin)
    assert resp.status == 200 and (await resp.json())["is_active"] is False
    resp = await client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))
    assert resp.status == 401
    resp = await client.post("/api/v1/auth/login", json={"email": "b@x.io", "password": PASSWORD})
    assert resp.status == 403
