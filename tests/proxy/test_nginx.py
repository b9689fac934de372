"""The nginx backend against a real, private nginx and real upstreams (aiohttp servers)."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from dployr.config import Config, ProxyConfig
from dployr.errors import ProxyError
from dployr.proxy import nginx as nginx_module
from dployr.proxy.detect import proxy_problem
from dployr.proxy.nginx import NginxProxy
from dployr.proxy.protocol import Route
from tests.proxy.conftest import Nginx, free_port, wait_for

APP = "app.localhost"
NAME = web.AppKey("name", str)


class Apps:
    """Named apps on free loopback ports: each answers "<name> <path> <headers>", `/slow`
    after 2 s, and echoes WebSocket messages on `/ws`."""

    def __init__(self) -> None:
        self.runners: list[web.AppRunner] = []

    async def __call__(self, name: str) -> str:
        return (await self.stoppable(name))[0]

    async def stoppable(self, name: str) -> tuple[str, Callable[[], Awaitable[None]]]:
        """Start an app: its address, and how to stop it."""
        app = web.Application()
        app[NAME] = name
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        self.runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"127.0.0.1:{port}", runner.cleanup


async def answer(request: web.Request) -> web.StreamResponse:
    name = request.app[NAME]
    if request.path.endswith("/ws"):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(f"{name}:{message.data}")
        return ws
    if request.path == "/slow":
        await asyncio.sleep(2)
    forwarded = ",".join(
        f"{key}={request.headers.get(key, '')}"
        for key in ("Host", "X-Forwarded-For", "X-Forwarded-Proto")
    )
    return web.Response(text=f"{name} {request.path} {forwarded}")


@pytest.fixture
async def upstream() -> AsyncIterator[Apps]:
    apps = Apps()
    yield apps
    for runner in apps.runners:
        await runner.cleanup()


def proxy_for(nginx: Nginx, **extra: object) -> NginxProxy:
    return NginxProxy(Config(proxy=ProxyConfig(**nginx.proxy_config(**extra))))


def route(path: str = "/", service: str = "svc_a", domain: str = APP, tls: str = "off") -> Route:
    return Route(f"rte_{service}_{domain}_{path}", domain, path, tls, service)


async def get(nginx: Nginx, path: str = "/", host: str = APP) -> tuple[int, str]:
    """A fresh connection each time: it reaches whatever config nginx serves now."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{nginx.http_port}{path}",
            headers={"Host": host},
            allow_redirects=False,
        ) as answer,
    ):
        return answer.status, await answer.text()


async def ours(nginx: Nginx) -> dict[str, str]:
    def read() -> dict[str, str]:
        return {path.name: path.read_text() for path in sorted(nginx.conf_dir.iterdir())}

    return await asyncio.to_thread(read)


async def test_routes_by_host_and_longest_prefix(nginx: Nginx, upstream: Apps) -> None:
    a, b, c = await upstream("a"), await upstream("b"), await upstream("c")
    proxy = proxy_for(nginx)
    routes = [
        route("/", "svc_a"),
        route("/api", "svc_b"),
        route("/api/v2", "svc_c"),
        route("/", "svc_c", domain="other.localhost"),
        route("/", "svc_b", domain="*.apps.localhost"),
    ]
    await proxy.apply(routes, {"svc_a": [a], "svc_b": [b], "svc_c": [c]})

    status, body = await get(nginx, "/")
    assert status == 200
    name, path, headers = body.split(" ")
    assert (name, path) == ("a", "/")
    assert f"Host={APP}" in headers
    assert "X-Forwarded-For=127.0.0.1" in headers
    assert "X-Forwarded-Proto=http" in headers
    for path, expected in [
        ("/api", "b /api"),
        ("/api/users", "b /api/users"),
        ("/apix", "a /apix"),  # a prefix matches whole segments only
        ("/api/v2", "c /api/v2"),  # the longest prefix wins
        ("/api/v2/x", "c /api/v2/x"),
        ("/api/v20", "b /api/v20"),
    ]:
        status, body = await get(nginx, path)
        assert (status, body.rsplit(" ", 1)[0]) == (200, expected), path
    assert (await get(nginx, "/", "other.localhost"))[1].startswith("c / ")
    assert (await get(nginx, "/", "x.apps.localhost"))[1].startswith("b / ")
    assert (await get(nginx, "/", "unknown.localhost"))[0] == 404
    names = set(await ours(nginx))
    assert {"dployr-app.localhost.conf", "dployr-_.apps.localhost.conf"} <= names


async def test_adding_and_deleting_routes(nginx: Nginx, upstream: Apps) -> None:
    a, b = await upstream("a"), await upstream("b")
    proxy = proxy_for(nginx)
    upstreams = {"svc_a": [a], "svc_b": [b]}
    await proxy.apply([route("/", "svc_a")], upstreams)
    assert (await get(nginx, "/", "new.localhost"))[0] == 404

    await proxy.apply([route("/", "svc_a"), route("/", "svc_b", "new.localhost")], upstreams)
    assert (await get(nginx, "/", "new.localhost"))[1].startswith("b / ")
    assert "dployr-new.localhost.conf" in await ours(nginx)

    await proxy.apply([route("/", "svc_a")], upstreams)
    assert (await get(nginx, "/", "new.localhost"))[0] == 404
    assert "dployr-new.localhost.conf" not in await ours(nginx)
    assert (await get(nginx, "/"))[1].startswith("a / ")

    await proxy.apply([], {})
    assert (await get(nginx, "/"))[0] == 404
    assert list(await ours(nginx)) == ["dployr--shared.conf"]


async def test_upstream_changes_are_served_when_apply_returns(nginx: Nginx, upstream: Apps) -> None:
    """`nginx -s reload` returns before new workers run; apply waits until they alone accept,
    so the first request after it (on a new connection) reaches the new upstream."""
    blue, green = await upstream("blue"), await upstream("green")
    proxy = proxy_for(nginx)
    for turn in range(6):
        name, address = ("blue", blue) if turn % 2 == 0 else ("green", green)
        await proxy.apply([route()], {"svc_a": [address]})
        assert (await get(nginx))[1].startswith(f"{name} / "), turn


async def test_a_slow_request_in_flight_finishes_across_a_reload(
    nginx: Nginx, upstream: Apps
) -> None:
    blue, green = await upstream("blue"), await upstream("green")
    proxy = proxy_for(nginx)
    await proxy.apply([route()], {"svc_a": [blue]})
    slow = asyncio.create_task(get(nginx, "/slow"))
    await asyncio.sleep(0.5)
    await proxy.apply([route()], {"svc_a": [green]})
    assert (await get(nginx))[1].startswith("green / ")
    status, body = await slow
    assert (status, body.split(" ")[0]) == (200, "blue")


async def test_switching_under_load_loses_no_request(nginx: Nginx, upstream: Apps) -> None:
    """Blue/green as the pipeline does it: start the new app, apply, let the old one drain a
    little, stop it; four clients (two keep-alive, two opening a connection per request) get
    only 200s. GETs: a request caught by a reload closing an idle keep-alive connection is
    retried by the client (aiohttp, like browsers, retries idempotent requests)."""
    proxy = proxy_for(nginx)
    address, stop_old = await upstream.stoppable("v0")
    await proxy.apply([route()], {"svc_a": [address]})
    statuses: Counter[str] = Counter()
    done = asyncio.Event()

    async def client(keep_alive: bool) -> None:
        connector = aiohttp.TCPConnector(force_close=not keep_alive)
        async with aiohttp.ClientSession(connector=connector) as session:
            while not done.is_set():
                try:
                    async with session.get(
                        f"http://127.0.0.1:{nginx.http_port}/", headers={"Host": APP}
                    ) as answer:
                        await answer.read()
                        statuses[str(answer.status)] += 1
                except aiohttp.ClientError as err:
                    statuses[type(err).__name__] += 1

    clients = [asyncio.create_task(client(keep_alive=n % 2 == 0)) for n in range(4)]
    try:
        for release in range(1, 6):
            await asyncio.sleep(0.2)
            new_address, stop_new = await upstream.stoppable(f"v{release}")
            await proxy.apply([route()], {"svc_a": [new_address]})
            await asyncio.sleep(0.3)  # the drain: requests in flight in old workers finish
            await stop_old()
            stop_old = stop_new
        await asyncio.sleep(0.2)
    finally:
        done.set()
        await asyncio.gather(*clients)
    assert set(statuses) == {"200"}, statuses
    assert statuses["200"] >= 200


async def test_a_stopped_service_answers_503(nginx: Nginx, upstream: Apps) -> None:
    a = await upstream("a")
    proxy = proxy_for(nginx)
    routes = [route("/", "svc_a"), route("/api", "svc_b")]
    await proxy.apply(routes, {"svc_a": [a], "svc_b": []})
    assert (await get(nginx, "/api/x"))[0] == 503
    assert (await get(nginx, "/"))[0] == 200
    await proxy.apply(routes, {})
    assert (await get(nginx, "/"))[0] == 503


async def test_websocket_upgrade_passes_through(nginx: Nginx, upstream: Apps) -> None:
    a = await upstream("a")
    await proxy_for(nginx).apply([route()], {"svc_a": [a]})
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{nginx.http_port}/ws", headers={"Host": APP}) as ws,
    ):
        await ws.send_str("hello")
        assert (await ws.receive(timeout=10)).data == "a:hello"
        await ws.send_str("again")
        assert (await ws.receive(timeout=10)).data == "a:again"


async def test_a_refused_config_restores_the_files_and_keeps_serving(
    nginx: Nginx, upstream: Apps, tmp_path: Path
) -> None:
    a = await upstream("a")
    certs = tmp_path / "certs"
    proxy = proxy_for(nginx, nginx_certs=str(certs))
    upstreams = {"svc_a": [a]}
    await proxy.apply([route("/"), route("/old", domain="old.localhost")], upstreams)
    before = await ours(nginx)

    # A certificate nginx cannot load: `nginx -t` refuses the config that names it.
    await asyncio.to_thread(plant_certificate, certs / "bad.test", b"garbage", b"garbage")
    wanted = [route("/"), route("/", domain="bad.test", tls="auto")]
    with pytest.raises(ProxyError) as refused:
        await proxy.apply(wanted, upstreams)
    details = refused.value.details or {}
    assert details["backend"] == "nginx"
    assert "bad.test/fullchain.pem" in details["message"]
    assert "[emerg]" in refused.value.message
    # The same files, byte for byte: the new one gone, the deleted one back.
    assert await ours(nginx) == before
    assert (await get(nginx, "/"))[1].startswith("a / ")
    assert (await get(nginx, "/old", "old.localhost"))[1].startswith("a /old ")
    assert (await get(nginx, "/", "bad.test"))[0] == 404


async def test_a_config_the_master_cannot_load_is_rolled_back(
    nginx: Nginx, upstream: Apps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nginx -t` does not bind: a config whose port is taken passes it, and the master, on
    reload, keeps its old config and workers. apply sees no new worker, restores the files
    and fails, with the old config serving."""
    monkeypatch.setattr(nginx_module, "SWITCH_TIMEOUT", 2.0)
    a = await upstream("a")
    certs = tmp_path / "certs"
    chain, key = await asyncio.to_thread(self_signed, "app.test")
    await asyncio.to_thread(plant_certificate, certs / "app.test", chain, key)
    proxy = proxy_for(nginx, nginx_certs=str(certs))
    await proxy.apply([route()], {"svc_a": [a]})
    before = await ours(nginx)
    with socket.socket() as taken:  # the HTTPS port the new config would listen on
        taken.bind(("0.0.0.0", nginx.https_port))  # noqa: S104 - where nginx binds it
        taken.listen()
        with pytest.raises(ProxyError) as refused:
            await proxy.apply([route(), route(domain="app.test", tls="auto")], {"svc_a": [a]})
        # The master tries the bind 5 times, 500 ms apart: the port stays taken until it gave
        # up, or a late try would succeed and load the new config after all.
        await asyncio.to_thread(
            wait_for, lambda: "still could not bind" in nginx.log(), "nginx giving up the bind"
        )
    assert "did not start workers" in refused.value.message
    assert await ours(nginx) == before
    assert (await get(nginx))[1].startswith("a / ")
    assert (await get(nginx, "/", "app.test"))[0] == 404
    await proxy.apply([route(), route(domain="app.test", tls="auto")], {"svc_a": [a]})
    assert (await get(nginx, "/", "app.test"))[0] == 308  # the port is free again


async def test_a_bad_upstream_address_writes_nothing(nginx: Nginx) -> None:
    with pytest.raises(ProxyError):
        await proxy_for(nginx).apply([route()], {"svc_a": ["127.0.0.1:80; include /etc/x"]})
    assert await ours(nginx) == {}


async def test_files_not_ours_are_never_touched(nginx: Nginx, upstream: Apps) -> None:
    a = await upstream("a")
    theirs = {
        "other.conf": "# someone else's\n",
        "dployr-notes.txt": "not a .conf: not ours\n",
        "zz.conf.disabled": "server {",
    }
    for name, text in theirs.items():
        await asyncio.to_thread((nginx.conf_dir / name).write_text, text)
    proxy = proxy_for(nginx)
    await proxy.apply([route()], {"svc_a": [a]})
    await proxy.apply([route(domain="x.localhost")], {"svc_a": [a]})
    await proxy.apply([], {})
    files = await ours(nginx)
    assert {name: files[name] for name in theirs} == theirs
    assert set(files) == {*theirs, "dployr--shared.conf"}


async def test_tls_auto_without_a_certificate_is_served_over_http(
    nginx: Nginx, upstream: Apps, tmp_path: Path
) -> None:
    a = await upstream("a")
    proxy = proxy_for(nginx, nginx_certs=str(tmp_path / "none"))
    assert proxy.https() == "certificates"
    await proxy.apply([route(domain="app.test", tls="auto")], {"svc_a": [a]})
    status, body = await get(nginx, "/", "app.test")
    assert (status, body.split(" ")[0]) == (200, "a")
    assert "X-Forwarded-Proto=http" in body


async def test_tls_auto_with_a_certificate_is_served_over_https(
    nginx: Nginx, upstream: Apps, tmp_path: Path
) -> None:
    a = await upstream("a")
    certs = tmp_path / "certs"
    chain, key = await asyncio.to_thread(self_signed, "app.test")
    await asyncio.to_thread(plant_certificate, certs / "app.test", chain, key)
    proxy = proxy_for(nginx, nginx_certs=str(certs))
    await proxy.apply([route(domain="app.test", tls="auto")], {"svc_a": [a]})

    trust = ssl.create_default_context(cadata=chain.decode())
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"https://127.0.0.1:{nginx.https_port}/secure",
            headers={"Host": "app.test"},
            server_hostname="app.test",
            ssl=trust,
        ) as answer,
    ):
        assert answer.status == 200
        body = await answer.text()
    assert body.startswith("a /secure ")
    assert "X-Forwarded-Proto=https" in body
    # Plain HTTP on the same name is sent to HTTPS.
    status, _ = await get(nginx, "/secure", "app.test")
    assert status == 308


async def test_a_cancelled_apply_still_completes(nginx: Nginx, upstream: Apps) -> None:
    blue, green = await upstream("blue"), await upstream("green")
    proxy = proxy_for(nginx)
    await proxy.apply([route()], {"svc_a": [blue]})
    task = asyncio.create_task(proxy.apply([route()], {"svc_a": [green]}))
    await asyncio.sleep(0.03)  # somewhere in render, write, test or reload
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The cancel waited for the whole apply: files and the running config agree.
    assert (await get(nginx))[1].startswith("green / ")


async def test_problem_says_whether_the_master_runs(nginx: Nginx) -> None:
    proxy = proxy_for(nginx)
    assert await proxy.problem() is None
    assert await proxy_problem(proxy.config) is None
    await asyncio.to_thread(nginx.stop)
    why = await proxy.problem()
    assert why is not None
    assert "not running" in why
    assert await proxy_problem(proxy.config) == why
    with pytest.raises(ProxyError):
        await proxy.apply([route()], {})
    assert list(await ours(nginx)) == []  # nothing left behind


def plant_certificate(folder: Path, chain: bytes, key: bytes) -> None:
    folder.mkdir(parents=True)
    (folder / "fullchain.pem").write_bytes(chain)
    (folder / "privkey.pem").write_bytes(key)


def self_signed(domain: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for `domain` and its key, in PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem
