"""/api/v1/proxy/routes on the real app and a real SQLite file, with `proxy.backend = "none"`
(routes kept, nothing written). Services come from deployments against an engine socket where
nothing listens: the service row exists, no container is needed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from dployr.errors import ProxyError
from dployr.keys import DB, DEPLOYER
from dployr.proxy.protocol import Route, Upstreams
from dployr.store.events import events_after
from tests.conftest import bearer, login, make_config, register, user_headers

Client = TestClient  # type: ignore[type-arg]
ROUTES = "/api/v1/proxy/routes"
BAD_DOMAINS = [
    "evil.com {\n}\n:2019 {",
    "a b.com",
    "x.com;include /etc/passwd",
    "bad.com:8080",
    "-bad.com",
    ("a" * 59 + ".") * 5 + "com",  # 303 characters of good labels
    "a" * 64 + ".com",
    "",
    "*.*.x.com",
    "x.com\n",
    'x"y.com',
    "x#y.com",
    "a..b.com",
    "xn--zz.com",  # not punycode
    "a\u200bb.com",  # a zero-width space
    "\u202eexample.com",  # a bidi override
]
BAD_PREFIXES = [
    "api",
    "/a b",
    "/{x}",
    "/a}",
    '/"q',
    "/'q",
    "/a/../b",
    "/..",
    "/a..b",
    "/x;y",
    "/x\n",
]


@pytest.fixture
async def dep(aiohttp_client: Any, tmp_path: Path) -> Client:
    config = make_config(
        tmp_path / "data",
        runtime={"default_target": "docker", "docker_host": f"unix://{tmp_path}/no.sock"},
        proxy={"api_domain": "api.example.com"},
    )
    client: Client = await aiohttp_client(create_app(config))
    await register(client)
    return client


async def _admin(client: Client) -> dict[str, str]:
    return bearer((await login(client))["access_token"])


async def _service(client: Client, auth: dict[str, str], name: str, **extra: Any) -> str:
    body = {"name": name, "source": "image", "image": "alpine:3", "port": 8080, **extra}
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["service_id"])


async def _post(client: Client, auth: dict[str, str], **body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post(ROUTES, json=body, headers=auth)
    return resp.status, dict(await resp.json())


async def _count(client: Client) -> int:
    return int(await client.app[DB].fetchval("SELECT COUNT(*) FROM routes"))


async def _route_events(client: Client) -> list[str]:
    return [e.type for e in await events_after(client.app[DB], 0, None) if "route" in e.type]


async def test_create_get_list_delete(dep: Client):
    admin = await _admin(dep)
    sid = await _service(dep, admin, "web")
    status, route = await _post(dep, admin, domain="App.Example.COM", service_id=sid)
    assert status == 201, route
    assert route["id"].startswith("rte_")
    assert route == {
        **route,
        "domain": "app.example.com",  # lower-cased
        "service_id": sid,
        "path_prefix": "/",
        "tls": "auto",
        "port": None,  # the service's port
    }
    status, api = await _post(
        dep, admin, domain="app.example.com", service_id=sid, path_prefix="/api/", port=8080
    )
    assert status == 201, api
    assert (api["path_prefix"], api["port"]) == ("/api", 8080)
    status, local = await _post(dep, admin, domain="web.localhost", service_id=sid)
    assert status == 201 and local["tls"] == "off", local  # .localhost: plain HTTP
    status, forced = await _post(dep, admin, domain="bücher.example", service_id=sid, tls="off")
    assert status == 201 and forced["domain"] == "xn--bcher-kva.example", forced
    assert forced["tls"] == "off"

    resp = await dep.get(f"{ROUTES}/{route['id']}", headers=admin)
    assert resp.status == 200 and await resp.json() == route
    listing = await (await dep.get(f"{ROUTES}?per_page=2", headers=admin)).json()
    assert (listing["total"], listing["total_pages"], listing["page"]) == (4, 2, 1)
    assert [r["id"] for r in listing["items"]] == [forced["id"], local["id"]]  # newest first
    listing = await (await dep.get(f"{ROUTES}?page=2&limit=2", headers=admin)).json()
    assert [r["id"] for r in listing["items"]] == [api["id"], route["id"]]

    resp = await dep.delete(f"{ROUTES}/{api['id']}", headers=admin)
    assert resp.status == 204
    resp = await dep.get(f"{ROUTES}/{api['id']}", headers=admin)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await dep.delete(f"{ROUTES}/{api['id']}", headers=admin)
    assert resp.status == 404
    assert await _count(dep) == 3

    # The events, with the route in their data, each committed with its change.
    found = [e for e in await events_after(dep.app[DB], 0, None) if e.type.startswith("route.")]
    assert [e.type for e in found] == ["route.created"] * 4 + ["route.deleted"]
    assert found[-1].data["route_id"] == api["id"] and found[-1].data["service_name"] == "web"
    assert found[0].data["domain"] == "app.example.com"


async def test_service_objects_list_their_routes(dep: Client):
    admin = await _admin(dep)
    web, worker = await _service(dep, admin, "web"), await _service(dep, admin, "other")
    _, one = await _post(dep, admin, domain="b.example.com", service_id=web)
    _, two = await _post(dep, admin, domain="a.example.com", service_id=web, path_prefix="/x")
    service = await (await dep.get(f"/api/v1/services/{web}", headers=admin)).json()
    fields = {"tls": "auto", "port": None}
    expected = [
        {"id": two["id"], "domain": "a.example.com", "path_prefix": "/x", **fields},
        {"id": one["id"], "domain": "b.example.com", "path_prefix": "/", **fields},
    ]
    assert service["routes"] == expected
    listing = await (await dep.get("/api/v1/services", headers=admin)).json()
    by_id = {s["id"]: s["routes"] for s in listing["items"]}
    assert by_id == {web: expected, worker: []}
    only = await (await dep.get(f"{ROUTES}?service_id={worker}", headers=admin)).json()
    assert only["items"] == [] and only["total"] == 0
    only = await (await dep.get(f"{ROUTES}?service_id={web}", headers=admin)).json()
    assert only["total"] == 2


async def test_another_users_routes_are_not_found(dep: Client):
    admin = await _admin(dep)
    bob = await user_headers(dep, admin, "bob@example.com")
    carol = await user_headers(dep, admin, "carol@example.com")
    bobs = await _service(dep, bob, "bobs")
    admins = await _service(dep, admin, "admins")
    status, route = await _post(dep, bob, domain="bob.example.com", service_id=bobs)
    assert status == 201, route

    # Carol can neither see nor touch it, nor route to Bob's service: 404, like unknown ids.
    assert (await dep.get(f"{ROUTES}/{route['id']}", headers=carol)).status == 404
    assert (await dep.delete(f"{ROUTES}/{route['id']}", headers=carol)).status == 404
    assert (await (await dep.get(ROUTES, headers=carol)).json())["items"] == []
    status, body = await _post(dep, carol, domain="carol.example.com", service_id=bobs)
    assert status == 404 and body["error"]["code"] == "not_found", body
    status, body = await _post(dep, bob, domain="bob2.example.com", service_id=admins)
    assert status == 404, body
    status, body = await _post(dep, bob, domain="bob2.example.com", service_id="svc_nope")
    assert status == 404, body

    # The admin sees everyone's.
    _, mine = await _post(dep, admin, domain="admin.example.com", service_id=admins)
    listing = await (await dep.get(ROUTES, headers=admin)).json()
    assert {r["id"] for r in listing["items"]} == {route["id"], mine["id"]}
    assert (await (await dep.get(ROUTES, headers=bob)).json())["total"] == 1
    assert (await dep.get(f"{ROUTES}/{route['id']}", headers=admin)).status == 200
    assert await _count(dep) == 2


@pytest.mark.parametrize("domain", BAD_DOMAINS)
async def test_bad_domains_are_refused_and_nothing_is_stored(dep: Client, domain: str):
    admin = await _admin(dep)
    sid = await _service(dep, admin, "web")
    status, body = await _post(dep, admin, domain=domain, service_id=sid)
    assert status == 400, (domain, body)
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"]["field"] == "domain", body
    assert await _count(dep) == 0
    # A deployment's domain goes through the same check.
    resp = await dep.post(
        "/api/v1/deployments",
        json={"name": "web", "source": "image", "image": "alpine:3", "domain": domain},
        headers=admin,
    )
    assert resp.status == 400, (domain, await resp.text())
    assert (await resp.json())["error"]["details"]["field"] == "domain"


@pytest.mark.parametrize("prefix", BAD_PREFIXES)
async def test_bad_path_prefixes_are_refused(dep: Client, prefix: str):
    admin = await _admin(dep)
    sid = await _service(dep, admin, "web")
    status, body = await _post(
        dep, admin, domain="ok.example.com", service_id=sid, path_prefix=prefix
    )
    assert status == 400, (prefix, body)
    assert body["error"]["details"]["field"] == "path_prefix", body
    assert await _count(dep) == 0


async def test_bad_ports_and_fields(dep: Client):
    admin = await _admin(dep)
    sid = await _service(dep, admin, "web")
    worker = await _service(dep, admin, "worker", port=None)
    for port in (0, 65536, "80", 8081):  # 8081: not the port the service listens on
        status, body = await _post(dep, admin, domain="a.example.com", service_id=sid, port=port)
        assert status == 400 and body["error"]["details"]["field"] == "port", (port, body)
    status, body = await _post(dep, admin, domain="a.example.com", service_id=worker)
    assert status == 400 and body["error"]["details"]["field"] == "service_id", body
    status, body = await _post(dep, admin, domain="a.example.com", service_id=sid, tls="on")
    assert status == 400 and body["error"]["details"]["field"] == "tls", body
    status, body = await _post(dep, admin, domain="a.example.com")
    assert status == 400 and body["error"]["details"]["field"] == "service_id", body
    status, body = await _post(dep, admin, domain=["a.example.com"], service_id=sid)
    assert status == 400 and body["error"]["details"]["field"] == "domain", body
    assert await _count(dep) == 0


async def test_taken_and_reserved_domains_conflict(dep: Client):
    admin = await _admin(dep)
    bob = await user_headers(dep, admin, "bob@example.com")
    web, bobs = await _service(dep, admin, "web"), await _service(dep, bob, "bobs")
    status, _ = await _post(dep, admin, domain="app.example.com", service_id=web)
    assert status == 201
    # The same (domain, path_prefix), however it is written, from anyone: 409.
    for body in (
        {"domain": "APP.example.com", "service_id": web},
        {"domain": "app.example.com", "service_id": web, "path_prefix": "/"},
    ):
        status, answer = await _post(dep, admin, **body)
        assert status == 409 and answer["error"]["code"] == "conflict", answer
        assert answer["error"]["details"]["field"] == "domain"
    status, answer = await _post(dep, bob, domain="app.example.com", service_id=bobs)
    assert status == 409, answer
    # Another path on it is another route, for its owner; another user's is a 409.
    status, _ = await _post(dep, admin, domain="app.example.com", service_id=web, path_prefix="/b")
    assert status == 201
    status, _ = await _post(dep, bob, domain="app.example.com", service_id=bobs, path_prefix="/c")
    assert status == 409
    # proxy.api_domain is the daemon's, on every path.
    for prefix in ("/", "/x"):
        status, answer = await _post(
            dep, admin, domain="API.example.com", service_id=web, path_prefix=prefix
        )
        assert status == 409 and answer["error"]["details"]["field"] == "domain", answer
    assert await _count(dep) == 2


async def test_a_deployments_domain_held_by_another_service_conflicts(dep: Client):
    admin = await _admin(dep)
    bob = await user_headers(dep, admin, "bob@example.com")
    web = await _service(dep, admin, "web")
    status, _ = await _post(dep, admin, domain="app.example.com", service_id=web)
    assert status == 201

    def deploy(name: str, domain: str) -> dict[str, Any]:
        return {"name": name, "source": "image", "image": "alpine:3", "domain": domain}

    for auth, name in ((admin, "other"), (bob, "web")):  # bob's "web" is another service
        resp = await dep.post(
            "/api/v1/deployments", json=deploy(name, "App.example.com"), headers=auth
        )
        body = await resp.json()
        assert resp.status == 409 and body["error"]["code"] == "conflict", body
        assert body["error"]["details"]["field"] == "domain"
    resp = await dep.post("/api/v1/deployments", json=deploy("x", "api.example.com"), headers=admin)
    assert resp.status == 409, await resp.text()
    # The service that holds it deploys with it; another path does not hold "/".
    resp = await dep.post(
        "/api/v1/deployments", json=deploy("web", "app.example.com"), headers=admin
    )
    assert resp.status == 202, await resp.text()
    other = await _service(dep, admin, "other")
    status, _ = await _post(
        dep, admin, domain="free.example.com", service_id=other, path_prefix="/p"
    )
    assert status == 201
    resp = await dep.post(
        "/api/v1/deployments", json=deploy("web", "free.example.com"), headers=admin
    )
    assert resp.status == 202, await resp.text()
    # PUT is a deployment request too.
    first = (await resp.json())["id"]
    resp = await dep.put(
        f"/api/v1/deployments/{first}", json={"domain": "app.example.com"}, headers=admin
    )
    assert resp.status == 202, await resp.text()
    created = await (
        await dep.post("/api/v1/deployments", json=deploy("other", "o.example.com"), headers=admin)
    ).json()
    resp = await dep.put(
        f"/api/v1/deployments/{created['id']}", json={"domain": "app.example.com"}, headers=admin
    )
    assert resp.status == 409 and (await resp.json())["error"]["details"]["field"] == "domain"


class RefusingProxy:
    """Stands in for a proxy that refuses every config (the real refusals are Caddy's and
    nginx's own, tested with them): what the API does with a ProxyError."""

    name = "caddy"

    def __init__(self) -> None:
        self.applied: list[list[Route]] = []

    async def apply(self, routes: Sequence[Route], upstreams: Upstreams) -> None:
        self.applied.append(list(routes))
        raise ProxyError("caddy", "adapting config: server listening on :2019 conflicts")

    async def problem(self) -> str | None:
        return None

    def https(self) -> str:
        return "automatic"


async def test_a_proxy_refusal_is_a_502_and_stores_nothing(dep: Client):
    admin = await _admin(dep)
    sid = await _service(dep, admin, "web")
    _, kept = await _post(dep, admin, domain="kept.example.com", service_id=sid)
    router = dep.app[DEPLOYER].router
    before = await _route_events(dep)
    router.proxy = refusing = RefusingProxy()

    status, body = await _post(dep, admin, domain="new.example.com", service_id=sid)
    assert status == 502, body
    assert body["error"]["code"] == "proxy_error"
    assert body["error"]["details"] == {
        "backend": "caddy",
        "message": "adapting config: server listening on :2019 conflicts",
    }
    assert "new.example.com" in {r.domain for r in refusing.applied[0]}  # it was asked
    resp = await dep.delete(f"{ROUTES}/{kept['id']}", headers=admin)
    assert resp.status == 502 and (await resp.json())["error"]["code"] == "proxy_error"
    listing = await (await dep.get(ROUTES, headers=admin)).json()
    assert [r["id"] for r in listing["items"]] == [kept["id"]]
    assert await _route_events(dep) == before  # no event either


async def test_a_domain_belongs_to_the_user_who_routed_it_first(dep: Client):
    """Another user can take neither a path of a routed domain (the longest prefix would win
    its traffic) nor a wildcard over it, nor a name under someone else's wildcard."""
    admin = await _admin(dep)
    bob = await user_headers(dep, admin, "bob@example.com")
    carol = await user_headers(dep, admin, "carol@example.com")
    bobs, carols = await _service(dep, bob, "bobs"), await _service(dep, carol, "carols")
    status, _ = await _post(dep, bob, domain="shop.example.com", service_id=bobs)
    assert status == 201
    status, _ = await _post(dep, bob, domain="*.bob.example.com", service_id=bobs)
    assert status == 201
    for domain, prefix in [
        ("shop.example.com", "/login"),
        ("SHOP.example.com", "/"),
        ("*.example.com", "/"),
        ("x.bob.example.com", "/"),
        ("*.bob.example.com", "/api"),
    ]:
        status, body = await _post(
            dep, carol, domain=domain, path_prefix=prefix, service_id=carols, tls="off"
        )
        assert status == 409, (domain, prefix, body)
        assert body["error"]["details"]["field"] == "domain", body
    # A deployment's domain as well, at request time.
    resp = await dep.post(
        "/api/v1/deployments",
        json={
            "name": "carols",
            "source": "image",
            "image": "alpine:3",
            "port": 8080,
            "domain": "shop.example.com",
        },
        headers=carol,
    )
    assert resp.status == 409, await resp.text()
    # Bob adds paths to his own domain; Carol keeps her own names.
    status, _ = await _post(dep, bob, domain="shop.example.com", path_prefix="/v2", service_id=bobs)
    assert status == 201
    status, _ = await _post(dep, carol, domain="example.com", service_id=carols)
    assert status == 201
    assert await _count(dep) == 4
