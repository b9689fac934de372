"""Behind a trusted proxy each client is counted on its own; a forged X-Forwarded-For is not."""

from __future__ import annotations

from typing import Any

from dployr.app import create_app
from tests.conftest import PASSWORD, make_config, register

EMAIL = "admin@example.com"
LIMITS = {"login_per_15min": 5, "anonymous_per_hour": 1000}


async def app_client(aiohttp_client: Any, tmp_path: Any, **sections: Any) -> Any:
    """The real app; the test client connects from 127.0.0.1, like a proxy on this host."""
    client = await aiohttp_client(create_app(make_config(tmp_path, rate_limit=LIMITS, **sections)))
    await register(client)
    return client


async def bad_login(client: Any, forwarded: str | None = None, password: str = "") -> int:
    password = password or "guess-guess"
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    resp = await client.post(
        "/api/v1/auth/login", json={"email": EMAIL, "password": password}, headers=headers
    )
    return int(resp.status)


async def test_a_locked_out_client_does_not_lock_out_the_others(aiohttp_client, tmp_path):
    # proxy.api_domain set, trusted_proxies empty: the local proxy (loopback) is believed.
    client = await app_client(aiohttp_client, tmp_path, proxy={"api_domain": "api.test"})
    assert [await bad_login(client, "203.0.113.1") for _ in range(6)] == [401] * 5 + [429]
    # Another client behind the same proxy still has its own five tries, and the right password.
    assert await bad_login(client, "203.0.113.2") == 401
    assert await bad_login(client, "203.0.113.2", PASSWORD) == 200
    # The first one stays locked out, even with the right password.
    assert await bad_login(client, "203.0.113.1", PASSWORD) == 429


async def test_forged_header_from_an_untrusted_peer_is_not_believed(aiohttp_client, tmp_path):
    # No api_domain and no trusted_proxies: nobody's X-Forwarded-For counts. Rotating a
    # forged header does not buy more tries.
    client = await app_client(aiohttp_client, tmp_path)
    statuses = [await bad_login(client, f"203.0.113.{n}") for n in range(1, 7)]
    assert statuses == [401] * 5 + [429]
    assert await bad_login(client, None, PASSWORD) == 429


async def test_trusted_proxies_not_including_loopback(aiohttp_client, tmp_path):
    # A proxy elsewhere is trusted, but this peer (127.0.0.1) is not that proxy.
    client = await app_client(
        aiohttp_client,
        tmp_path,
        proxy={"api_domain": "api.test"},
        server={"trusted_proxies": ["10.0.0.0/8"]},
    )
    statuses = [await bad_login(client, f"10.0.0.1, 203.0.113.{n}") for n in range(1, 7)]
    assert statuses == [401] * 5 + [429]


async def test_ipv6_clients_are_counted_by_their_64(aiohttp_client, tmp_path):
    client = await app_client(aiohttp_client, tmp_path, server={"trusted_proxies": ["127.0.0.1"]})
    rotating = [await bad_login(client, f"2001:db8:aa:bb::{n:x}") for n in range(1, 7)]
    assert rotating == [401] * 5 + [429]  # a new address in the same /64 is the same client
    assert await bad_login(client, "2001:db8:aa:bc::1", PASSWORD) == 200  # the next /64 is not


async def test_anonymous_limit_and_access_log_use_the_client(aiohttp_client, tmp_path, caplog):
    caplog.set_level("INFO", logger="dployr.access")
    config = make_config(
        tmp_path, rate_limit={"anonymous_per_hour": 2}, proxy={"api_domain": "api.test"}
    )
    client = await aiohttp_client(create_app(config))
    for _ in range(2):
        resp = await client.get("/api/v1/info", headers={"X-Forwarded-For": "198.51.100.4"})
        assert resp.status == 200
    resp = await client.get("/api/v1/info", headers={"X-Forwarded-For": "198.51.100.4"})
    assert resp.status == 429
    resp = await client.get("/api/v1/info", headers={"X-Forwarded-For": "198.51.100.5"})
    assert resp.status == 200 and resp.headers["X-RateLimit-Remaining"] == "1"
    lines = [r.getMessage() for r in caplog.records if r.name == "dployr.access"]
    assert lines[-1].startswith("GET /api/v1/info 200 ") and lines[-1].endswith(" 198.51.100.5")


async def test_hook_url_has_the_scheme_the_client_used_behind_a_trusted_proxy(
    aiohttp_client, tmp_path
):
    """Behind Caddy on api_domain the client speaks HTTPS: a hook URL with http:// would get
    a redirect, which push hooks do not follow. Only a trusted proxy's word counts."""
    for trusted, expected in ((["127.0.0.1"], "https"), (["10.0.0.0/8"], "http")):
        runtime = {"default_target": "docker", "docker_host": f"unix://{tmp_path}/no.sock"}
        client = await app_client(
            aiohttp_client, tmp_path / expected, server={"trusted_proxies": trusted},
            runtime=runtime,
        )  # fmt: skip
        resp = await client.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {(await resp.json())['access_token']}"}
        resp = await client.post(
            "/api/v1/deployments",
            json={"name": "web", "source": "image", "image": "alpine:3", "port": 8080},
            headers=auth,
        )
        assert resp.status == 202, await resp.text()
        service_id = (await resp.json())["service_id"]
        resp = await client.get(
            f"/api/v1/services/{service_id}", headers={**auth, "X-Forwarded-Proto": "https"}
        )
        hook_url = (await resp.json())["hook_url"]
        assert hook_url.startswith(f"{expected}://"), hook_url
