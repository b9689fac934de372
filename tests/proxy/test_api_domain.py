"""The daemon's own API behind a real Caddy over HTTPS and a real nginx (proxy.api_domain), and
whose X-Forwarded-For it believes: a real `dployr serve`, clients on distinct loopback addresses."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing
from tests.integration.conftest import PASSWORD, Daemon, daemon_env, run_dployr
from tests.proxy.conftest import Caddy, Nginx, free_port

pytestmark = pytest.mark.integration

DOMAIN = "api.test"
EMAIL = "admin@example.com"
# Clients on addresses of their own: 127.0.0.0/8 is all loopback on Linux. Caddy talks to
# the daemon from 127.0.0.1, the one trusted proxy.
ALICE, BOB, MALLORY = "127.0.0.2", "127.0.0.3", "127.0.0.4"


class _Connection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:<port> from `source`, with SNI and certificate checks for `name`."""

    def __init__(self, port: int, name: str, source: str, context: ssl.SSLContext) -> None:
        super().__init__("127.0.0.1", port, source_address=(source, 0), timeout=10)
        self._name, self._tls = name, context

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._name)


class ApiOverHttps:
    def __init__(self, caddy: Caddy) -> None:
        self.caddy = caddy
        self.context: ssl.SSLContext | None = None

    def request(
        self, method: str, path: str, body: Any = None, source: str = "127.0.0.1", **headers: str
    ) -> tuple[int, Any]:
        assert self.context is not None, "call wait_served() first"
        connection = _Connection(self.caddy.https_port, DOMAIN, source, self.context)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Host": DOMAIN, "Content-Type": "application/json", **headers}
        try:
            connection.request(method, path, body=data, headers=headers)
            answer = connection.getresponse()
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
        finally:
            connection.close()

    def wait_served(self, timeout: float = 60) -> dict[str, Any]:
        """GET /health over HTTPS once Caddy's local CA has issued the certificate."""
        root = self.caddy.home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.context is None and root.exists():
                    self.context = ssl.create_default_context(cafile=str(root))
                if self.context is not None:
                    status, body = self.request("GET", "/health")
                    assert status == 200, body
                    return dict(body)
            except (OSError, ssl.SSLError) as err:  # no certificate yet: handshake refused
                if time.monotonic() > deadline:
                    raise AssertionError(f"{DOMAIN} not served over HTTPS: {err}") from err
            if time.monotonic() > deadline:
                raise AssertionError(f"Caddy's local CA made no root in {timeout} s")
            time.sleep(0.2)

    def login(self, source: str, password: str = "", **headers: str) -> int:
        body = {"email": EMAIL, "password": password or "guess-guess"}
        return self.request("POST", "/api/v1/auth/login", body, source, **headers)[0]


def login_via(
    port: int, source: str, forwarded: str | None = None, password: str = "", host: str = DOMAIN
) -> int:
    """POST /auth/login over plain HTTP to 127.0.0.1:<port> (the daemon, or nginx), from
    `source`, with an X-Forwarded-For of the caller's own when `forwarded` is given."""
    body = json.dumps({"email": EMAIL, "password": password or "guess-guess"}).encode()
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, source_address=(source, 0), timeout=10
    )
    headers = {"Host": host, "Content-Type": "application/json"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    try:
        connection.request("POST", "/api/v1/auth/login", body=body, headers=headers)
        answer = connection.getresponse()
        answer.read()
        return int(answer.status)
    finally:
        connection.close()


def loopback_aliases_work() -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((MALLORY, 0))
        except OSError:
            return False
    return True


def behind(tmp_path: Path, proxy: dict[str, Any]) -> Daemon:
    """A `dployr serve` whose API the proxy serves on api.test; it trusts 127.0.0.1 only."""
    if not loopback_aliases_work():
        missing("this host cannot bind 127.0.0.2-4", "the per-client test needs loopback as a /8")
    data_dir = tmp_path / "data"
    config = tmp_path / "etc" / "config.toml"
    config.parent.mkdir()
    config.write_text("# [proxy] and [server] come from the environment\n")
    env = daemon_env(
        data_dir,
        **{f"DPLOYR_PROXY_{key.upper()}": str(value) for key, value in proxy.items()},
        DPLOYR_SERVER_TRUSTED_PROXIES='["127.0.0.1/32"]',
        DPLOYR_RATE_LIMIT_ENABLED="true",
        DPLOYR_RATE_LIMIT_LOGIN_PER_15MIN="5",
        # No engine: the proxy is synced at start all the same, and nothing is left to clean.
        DPLOYR_RUNTIME_DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock",
    )
    return Daemon(data_dir, config, env)


@pytest.fixture
def api_daemon(tmp_path: Path, caddy: Caddy) -> Iterator[Daemon]:
    daemon = behind(tmp_path, caddy.proxy_config(api_domain=DOMAIN))
    try:
        yield daemon
    finally:
        daemon.kill()


@pytest.fixture
def nginx_daemon(tmp_path: Path, nginx: Nginx) -> Iterator[Daemon]:
    daemon = behind(tmp_path, nginx.proxy_config(api_domain=DOMAIN))
    try:
        yield daemon
    finally:
        daemon.kill()


def test_the_api_over_https_through_caddy_counts_each_client_apart(
    api_daemon: Daemon, caddy: Caddy
):
    api_daemon.start()
    api = ApiOverHttps(caddy)
    assert api.wait_served()["status"] == "ok"
    status, user = api.request(
        "POST", "/api/v1/auth/register", {"name": "A", "email": EMAIL, "password": PASSWORD}
    )
    assert status == 201, user

    # Alice guesses five times through the proxy and is locked out ...
    assert [api.login(ALICE) for _ in range(6)] == [401] * 5 + [429]
    assert api.login(ALICE, PASSWORD) == 429
    # ... and a forged X-Forwarded-For sent to the proxy does not free her: Caddy names her.
    assert api.login(ALICE, PASSWORD, **{"X-Forwarded-For": "203.0.113.50"}) == 429
    # Bob, behind the same proxy, is not locked out with her.
    assert api.login(BOB) == 401
    assert api.login(BOB, PASSWORD) == 200

    # Straight to the daemon, Mallory's X-Forwarded-For is not believed (127.0.0.4 is not a
    # trusted proxy): a new forged address each time buys her no more tries.
    port = api_daemon.port
    statuses = [login_via(port, MALLORY, f"198.51.100.{n}") for n in range(1, 7)]
    assert statuses == [401] * 5 + [429]
    assert login_via(port, MALLORY, "198.51.100.99", PASSWORD) == 429
    # She is 127.0.0.4 whichever way she comes: through the proxy she is locked out too.
    assert api.login(MALLORY, PASSWORD) == 429

    api_daemon.stop()
    assert api_daemon.log is not None
    log = api_daemon.log.read_text()
    assert "POST /api/v1/auth/login 200 " in log
    access = [line for line in log.splitlines() if "POST /api/v1/auth/login" in line]
    assert any(line.endswith(f" {BOB}") for line in access), access[-5:]
    assert not any("198.51.100." in line or "203.0.113." in line for line in access)


def test_through_nginx_the_address_nginx_saw_is_the_client(nginx_daemon: Daemon, nginx: Nginx):
    """nginx appends the address it saw to whatever X-Forwarded-For the client sent: the
    walk from the right finds it, and a forged entry left of it changes nothing."""
    nginx_daemon.start()
    status, _ = nginx_daemon.request(
        "POST", "/api/v1/auth/register", {"name": "A", "email": EMAIL, "password": PASSWORD}
    )
    assert status == 201
    # A tls: auto route without a certificate: nginx serves it over HTTP (decisions.md).
    wait_for_route = time.monotonic() + 30
    while login_via(nginx.http_port, BOB, password=PASSWORD) != 200:
        assert time.monotonic() < wait_for_route, nginx.log()
        time.sleep(0.2)
    forged = [login_via(nginx.http_port, ALICE, f"203.0.113.{n}") for n in range(1, 7)]
    assert forged == [401] * 5 + [429]  # a new forged address each time: still Alice
    assert login_via(nginx.http_port, ALICE, "10.0.0.1", PASSWORD) == 429
    assert login_via(nginx.http_port, BOB) == 401  # Bob is not locked out with her
    assert login_via(nginx.http_port, BOB, "127.0.0.1", PASSWORD) == 200


def test_a_bad_api_domain_or_trusted_proxy_stops_the_start(tmp_path: Path):
    env = daemon_env(tmp_path / "data", DPLOYR_PROXY_API_DOMAIN="api.test:8443")
    config = tmp_path / "config.toml"
    config.write_text("")
    done = run_dployr("serve", "--config", str(config), "--port", str(free_port()), env=env)
    assert done.returncode == 2 and "proxy.api_domain" in done.stderr, done.stderr
    env = daemon_env(tmp_path / "data", DPLOYR_SERVER_TRUSTED_PROXIES='["10.0.0.0/40"]')
    done = run_dployr("serve", "--config", str(config), "--port", str(free_port()), env=env)
    assert done.returncode == 2, done.stderr
    assert "server.trusted_proxies" in done.stderr and "10.0.0.0/40" in done.stderr
