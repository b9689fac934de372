"""The Caddy backend against a real, private Caddy and real upstream servers."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dployr.app import create_app
from dployr.errors import ProxyError
from dployr.proxy import caddy as caddy_module
from dployr.proxy.caddy import CaddyProxy, render_caddyfile
from dployr.proxy.protocol import Route
from tests.conftest import make_config
from tests.proxy.conftest import Caddy, free_port

pytestmark = pytest.mark.integration


class Upstreams:
    """Real HTTP servers on free loopback ports, answering {name, path, headers} as JSON;
    `/slow` answers after 2 s (and sets `arrived[name]` as it comes in)."""

    def __init__(self) -> None:
        self.runners: list[web.AppRunner] = []
        self.arrived: dict[str, asyncio.Event] = {}

    async def __call__(self, name: str, port: int = 0) -> str:
        """Start one: its "127.0.0.1:<port>"."""
        arrived = self.arrived[name] = asyncio.Event()

        async def answer(request: web.Request) -> web.Response:
            if request.path == "/slow":
                arrived.set()
                await asyncio.sleep(2)
            headers = {key.lower(): value for key, value in request.headers.items()}
            return web.json_response({"name": name, "path": request.path, "headers": headers})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.runners.append(runner)
        return f"127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstreams]:
    servers = Upstreams()
    yield servers
    for runner in servers.runners:
        await runner.cleanup()


def backend(caddy: Caddy, tmp_path: Path, **proxy: Any) -> CaddyProxy:
    return CaddyProxy(make_config(tmp_path / "data", proxy=caddy.proxy_config(**proxy)))


def route(path: str = "/", service: str = "svc_a", domain: str = "app.localhost") -> Route:
    tls = "off" if domain.endswith(".localhost") else "auto"
    return Route(f"rte_{service}_{path.strip('/')}", domain, path, tls, service)


async def fetch(
    caddy: Caddy, path: str = "/", host: str = "app.localhost"
) -> tuple[int, dict[str, Any] | str]:
    """GET through Caddy's HTTP port with `Host: <host>`: (status, the upstream's JSON or text)."""
    url = f"http://127.0.0.1:{caddy.http_port}{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Host": host}, allow_redirects=False) as answer,
    ):
        if answer.content_type == "application/json":
            return answer.status, await answer.json()
        return answer.status, await answer.text()


async def served_by(caddy: Caddy, path: str = "/", host: str = "app.localhost") -> str:
    status, body = await fetch(caddy, path, host)
    assert status == 200 and isinstance(body, dict), (status, body)
    return str(body["name"])


async def test_routes_by_host_and_longest_prefix(caddy: Caddy, tmp_path: Path, upstream: Upstreams):
    proxy = backend(caddy, tmp_path)
    a, b, c = await upstream("a"), await upstream("b"), await upstream("c")
    routes = [route("/", "svc_a"), route("/api", "svc_b"), route("/api/v2", "svc_c")]
    await proxy.apply(routes, {"svc_a": [a], "svc_b": [b], "svc_c": [c]})
    assert await served_by(caddy, "/") == "a"
    assert await served_by(caddy, "/apix") == "a"  # a prefix is a path segment, not a string
    assert await served_by(caddy, "/api") == "b"
    assert await served_by(caddy, "/api/users?x=1") == "b"
    assert await served_by(caddy, "/api/v2") == "c"
    assert await served_by(caddy, "/api/v2/items") == "c"
    status, body = await fetch(caddy, "/", host="other.localhost")
    assert status != 200 or body == ""  # another name is not routed to any app
    # The path is passed on whole; Host and X-Forwarded-* are the client's.
    status, body = await fetch(caddy, "/api/v2/items")
    assert isinstance(body, dict) and body["path"] == "/api/v2/items"
    headers = body["headers"]
    assert headers["host"] == "app.localhost"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"


async def test_a_domain_without_a_root_route_answers_404_elsewhere(
    caddy: Caddy, tmp_path: Path, upstream: Upstreams
):
    proxy = backend(caddy, tmp_path)
    await proxy.apply([route("/api", "svc_b")], {"svc_b": [await upstream("b")]})
    assert await served_by(caddy, "/api/x") == "b"
    status, body = await fetch(caddy, "/other")
    assert status == 404 and "no route" in str(body)


async def test_adding_and_deleting_routes(caddy: Caddy, tmp_path: Path, upstream: Upstreams):
    proxy = backend(caddy, tmp_path)
    a, b = await upstream("a"), await upstream("b")
    await proxy.apply([route("/", "svc_a")], {"svc_a": [a]})
    assert await served_by(caddy, "/docs") == "a"
    await proxy.apply([route("/", "svc_a"), route("/docs", "svc_b")], {"svc_a": [a], "svc_b": [b]})
    assert await served_by(caddy, "/docs") == "b"
    await proxy.apply([route("/", "svc_a")], {"svc_a": [a], "svc_b": [b]})
    assert await served_by(caddy, "/docs") == "a"
    await proxy.apply([], {})
    with pytest.raises(aiohttp.ClientConnectionError):  # no site left: nothing listens
        for _ in range(50):  # the old server lets go of the port as it stops
            await fetch(caddy)
            await asyncio.sleep(0.1)
    assert (await proxy.problem()) is None


async def test_two_upstream_changes_in_a_row(caddy: Caddy, tmp_path: Path, upstream: Upstreams):
    proxy = backend(caddy, tmp_path)
    old, new, newer = await upstream("old"), await upstream("new"), await upstream("newer")
    await proxy.apply([route()], {"svc_a": [old]})
    assert await served_by(caddy) == "old"
    await proxy.apply([route()], {"svc_a": [new]})
    assert await served_by(caddy) == "new"
    await proxy.apply([route()], {"svc_a": [newer]})
    assert await served_by(caddy) == "newer"
    persisted = await asyncio.to_thread(Path(caddy.caddyfile).read_text)
    assert f'"{newer}"' in persisted and f'"{new}"' not in persisted


async def test_a_request_in_flight_at_a_switch_completes(
    caddy: Caddy, tmp_path: Path, upstream: Upstreams
):
    proxy = backend(caddy, tmp_path)
    old, new = await upstream("old"), await upstream("new")
    await proxy.apply([route()], {"svc_a": [old]})
    slow = asyncio.create_task(fetch(caddy, "/slow"))
    await upstream.arrived["old"].wait()
    await proxy.apply([route()], {"svc_a": [new]})
    assert await served_by(caddy) == "new"  # the switch does not wait for it
    status, body = await slow
    assert status == 200 and isinstance(body, dict) and body["name"] == "old"


async def test_a_refused_connection_is_retried_not_a_502(
    caddy: Caddy, tmp_path: Path, upstream: Upstreams
):
    proxy = backend(caddy, tmp_path)
    port = free_port()
    await proxy.apply([route()], {"svc_a": [f"127.0.0.1:{port}"]})
    waiting = asyncio.create_task(fetch(caddy, "/"))  # nothing listens on the upstream yet
    await asyncio.sleep(0.5)
    await upstream("late", port)
    status, body = await waiting
    assert status == 200 and isinstance(body, dict) and body["name"] == "late"


async def test_a_stopped_service_answers_503(caddy: Caddy, tmp_path: Path, upstream: Upstreams):
    proxy = backend(caddy, tmp_path)
    await proxy.apply([route("/", "svc_a"), route("/b", "svc_b")], {"svc_b": [], "svc_c": []})
    status, body = await fetch(caddy, "/")
    assert status == 503 and "no running instance" in str(body)
    status, _ = await fetch(caddy, "/b/x")
    assert status == 503


async def test_a_refused_config_keeps_the_old_one(
    caddy: Caddy, tmp_path: Path, upstream: Upstreams
):
    proxy = backend(caddy, tmp_path)
    a = await upstream("a")
    await proxy.apply([route()], {"svc_a": [a]})
    persisted = await asyncio.to_thread(Path(caddy.caddyfile).read_text)
    # A genuine refusal: the new config's HTTP port is held by another listener.
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 - Caddy binds all addresses: so does the squatter
        taken.listen()
        busy = backend(caddy, tmp_path, http_port=taken.getsockname()[1])
        with pytest.raises(ProxyError) as refused:
            await busy.apply([route()], {"svc_a": [a]})
    details = refused.value.details or {}
    assert details["backend"] == "caddy"
    assert "address already in use" in details["message"]
    assert await served_by(caddy) == "a"  # still the old config
    # Only the applied config is kept, and no staged file is left behind.
    assert await asyncio.to_thread(Path(caddy.caddyfile).read_text) == persisted
    assert await asyncio.to_thread(lambda: list(caddy.home.glob(".Caddyfile.*"))) == []


async def test_an_unsafe_upstream_never_reaches_the_caddyfile(caddy: Caddy, tmp_path: Path):
    proxy = backend(caddy, tmp_path)
    with pytest.raises(ProxyError, match="invalid upstream"):
        await proxy.apply([route()], {"svc_a": ['127.0.0.1:80 {\n}\n:2019 {"']})
    assert not await asyncio.to_thread(Path(caddy.caddyfile).exists)


async def test_a_restarted_caddy_serves_the_persisted_routes(
    caddy: Caddy, tmp_path: Path, upstream: Upstreams
):
    proxy = backend(caddy, tmp_path)
    a, b = await upstream("a"), await upstream("b")
    await proxy.apply([route("/", "svc_a"), route("/b", "svc_b")], {"svc_a": [a], "svc_b": [b]})
    await asyncio.to_thread(caddy.stop)
    await asyncio.to_thread(caddy.start, caddy.caddyfile)
    assert await served_by(caddy, "/") == "a"
    assert await served_by(caddy, "/b") == "b"
    assert await proxy.problem() is None  # the admin API is where dployr looks for it
    await proxy.apply([route("/", "svc_b")], {"svc_b": [b]})
    assert await served_by(caddy, "/b") == "b"


async def test_tls_auto_serves_https_from_the_internal_ca(
    caddy: Caddy, tmp_path: Path, upstream: Upstreams
):
    proxy = backend(caddy, tmp_path)
    assert proxy.https() == "internal"
    await proxy.apply([route("/", "svc_a", domain="app.test")], {"svc_a": [await upstream("a")]})
    root = caddy.home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    body = await asyncio.wait_for(_https_get(caddy, root), 60)
    assert body["name"] == "a"
    assert body["headers"]["x-forwarded-proto"] == "https"
    # Plain HTTP to the same name is redirected to HTTPS. Caddy leaves out https_port: it
    # takes it for the port behind a forward from 443 (tests use other ports, hosts use 443).
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{caddy.http_port}/x?y=1",
            headers={"Host": "app.test"},
            allow_redirects=False,
        ) as answer,
    ):
        assert answer.status == 308
        assert answer.headers["Location"] == "https://app.test/x?y=1"


async def test_tls_off_routes_of_an_https_domain_stay_on_http(
    caddy: Caddy, tmp_path: Path, upstream: Upstreams
):
    proxy = backend(caddy, tmp_path)
    a, b = await upstream("a"), await upstream("b")
    plain = Route("rte_plain", "app.test", "/plain", "off", "svc_b")
    await proxy.apply([route("/", "svc_a", domain="app.test"), plain], {"svc_a": [a], "svc_b": [b]})
    assert await served_by(caddy, "/plain/x", host="app.test") == "b"
    status, _ = await fetch(caddy, "/other", host="app.test")
    assert status == 308


async def _https_get(caddy: Caddy, root: Path) -> dict[str, Any]:
    """GET https://app.test/ at 127.0.0.1:https_port, trusting only Caddy's local root; the
    certificate is issued in the background after the load, so wait for it."""
    while not await asyncio.to_thread(root.exists):
        await asyncio.sleep(0.1)
    context = await asyncio.to_thread(ssl.create_default_context, cafile=str(root))
    resolver = _Pinned({"app.test": "127.0.0.1"})
    connector = aiohttp.TCPConnector(ssl=context, resolver=resolver)
    async with aiohttp.ClientSession(connector=connector) as session:
        while True:
            try:
                async with session.get(f"https://app.test:{caddy.https_port}/") as answer:
                    assert answer.status == 200, await answer.text()
                    # No HTTP/3 offered: Caddy 2.6 cuts HTTP/3 requests in flight at a reload.
                    assert "Alt-Svc" not in answer.headers
                    return dict(await answer.json())
            except aiohttp.ClientConnectorError:  # the certificate is not there yet
                await asyncio.sleep(0.2)


class _Pinned(aiohttp.abc.AbstractResolver):
    """Resolves the names given to fixed addresses (app.test is not in any DNS)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
        return [
            {"hostname": host, "host": self.names[host], "port": port,
             "family": socket.AF_INET, "proto": 0, "flags": 0}
        ]  # fmt: skip

    async def close(self) -> None:
        return None


async def test_the_daemon_at_start_serves_its_api_domain_through_caddy(
    caddy: Caddy, tmp_path: Path, aiohttp_client: Any
):
    port = free_port()
    config = make_config(
        tmp_path / "data",
        server={"host": "127.0.0.1", "port": port},
        runtime={"docker_host": f"unix://{tmp_path}/no.sock"},  # the proxy is synced anyway
        proxy=caddy.proxy_config(api_domain="api.localhost"),
    )
    client = await aiohttp_client(create_app(config), server_kwargs={"port": port})
    status, body = await fetch(caddy, "/api/v1/info", host="api.localhost")
    assert status == 200 and isinstance(body, dict) and body["proxy"] == "caddy"
    # No engine, but the process target runs releases anywhere: ready, proxy included.
    ready = await client.get("/health/ready")
    assert ready.status == 200, await ready.text()
    assert "api.localhost" in await asyncio.to_thread(Path(caddy.caddyfile).read_text)


async def test_a_host_that_would_refuse_connections_at_a_load_is_named(
    caddy: Caddy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    setting = tmp_path / "tcp_migrate_req"
    await asyncio.to_thread(setting.write_text, "0\n")
    monkeypatch.setattr(caddy_module, "MIGRATE_REQ", setting)
    proxy = backend(caddy, tmp_path)
    await proxy.apply([route()], {"svc_a": []})
    await proxy.apply([route("/x")], {"svc_a": []})
    warnings = [r for r in caplog.records if "tcp_migrate_req" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"  # once, not per apply


async def test_the_admin_api_down_is_a_proxy_error(caddy: Caddy, tmp_path: Path):
    proxy = backend(caddy, tmp_path, caddy_admin=f"http://127.0.0.1:{free_port()}")
    problem = await proxy.problem()
    assert problem is not None and "does not answer" in problem
    with pytest.raises(ProxyError) as down:
        await proxy.apply([route()], {"svc_a": []})
    assert "start Caddy" in down.value.message
    assert "does not answer" in (down.value.details or {})["message"]
    # Nothing was applied: nothing is persisted.
    assert not await asyncio.to_thread(Path(caddy.caddyfile).exists)


async def test_the_issuer_and_names_decide_the_sites(tmp_path: Path):
    """Pure rendering: acme is Caddy's default automatic HTTPS; .localhost is plain HTTP."""
    config = make_config(tmp_path, proxy={"backend": "caddy", "caddy_admin": "http://[::1]:2999"})
    proxy = CaddyProxy(config)
    assert proxy.https() == "automatic"
    routes = [
        Route("r1", "app.localhost", "/", "auto", "svc_a"),
        Route("r2", "*.example.com", "/", "auto", None),
    ]
    text = await asyncio.to_thread(
        render_caddyfile, routes, {"svc_a": [], "dployr": ["[::1]:7870"]}, config.proxy
    )
    assert "admin [::1]:2999" in text
    assert "local_certs" not in text and "skip_install_trust" not in text
    assert '"http://app.localhost:80" {' in text and "https://app.localhost" not in text
    assert '"https://*.example.com:443" {' in text
    assert 'reverse_proxy "[::1]:7870" {' in text
