"""Private, real proxies for the tests: a Caddy with its admin API on a free loopback port, an
nginx with its own prefix and conf. Nothing touches the machine's own /etc/caddy or /etc/nginx."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import missing
from tests.docker.conftest import data_dir, docker_engine, wait_done  # noqa: F401 - fixtures too


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proxy_port() -> int:
    """A port for a proxy to listen on later, on every address: below the kernel's ephemeral
    range (32768-60999), which hands ports to every port-0 bind (test upstreams, the engine's
    published ports) and could give away a free_port() before the proxy binds it."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        try:
            with socket.socket() as v4:
                v4.bind(("0.0.0.0", port))  # noqa: S104 - where the proxy will listen
            with socket.socket(socket.AF_INET6) as v6:  # dual-stack: both families at once
                v6.bind(("::", port))
        except OSError:
            continue
        return port
    raise AssertionError("no free port for a proxy in 20000-32000")


def need(binary: str) -> str:
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin")
    if found is None:
        missing(f"{binary} is not installed", "scripts/provision installs it")
    return found


def wait_for(check: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not come up within {timeout} s")


def get(port: int, host: str, path: str = "/", timeout: float = 5) -> tuple[int, str]:
    """GET http://127.0.0.1:<port><path> with `Host: <host>`: (status, body)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def kill(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL a proxy's whole process group (its master and workers)."""
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@dataclass
class Caddy:
    """`caddy run` with its admin API on `admin`, its data (certificates, the local CA) in
    `home`. `proxy_config()` is the [proxy] section that points dployr at it."""

    home: Path
    admin_port: int
    http_port: int
    https_port: int
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, home: Path) -> Caddy:
        home.mkdir(parents=True)
        return cls(home, free_port(), proxy_port(), proxy_port())

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def caddyfile(self) -> Path:
        return self.home / "Caddyfile"

    def proxy_config(self, **extra: Any) -> dict[str, Any]:
        return {
            "backend": "caddy",
            "caddy_admin": self.admin,
            "caddyfile": str(self.caddyfile),
            "http_port": self.http_port,
            "https_port": self.https_port,
            "tls_issuer": "internal",
            **extra,
        }

    def start(self, config: Path | None = None) -> None:
        """Start Caddy, with `config` (a Caddyfile dployr persisted) or with an empty config
        whose only content is the admin address."""
        if config is None:
            config = self.home / "initial.json"
            config.write_text(f'{{"admin": {{"listen": "127.0.0.1:{self.admin_port}"}}}}')
        adapter = ["--adapter", "caddyfile"] if config.suffix != ".json" else []
        env = {**os.environ, "XDG_DATA_HOME": str(self.home / "data"),
               "XDG_CONFIG_HOME": str(self.home / "config"), "HOME": str(self.home)}  # fmt: skip
        with (self.home / "caddy.log").open("ab") as log:
            self.process = subprocess.Popen(
                [need("caddy"), "run", "--config", str(config), *adapter],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for(self._answers, f"caddy (admin {self.admin})")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"caddy exited:\n{self.log()}")
        with urllib.request.urlopen(self.admin + "/config/", timeout=2) as answer:
            return bool(answer.status == 200)

    def log(self) -> str:
        return (self.home / "caddy.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        kill(self.process)
        self.process = None


@pytest.fixture
def caddy(tmp_path: Path) -> Iterator[Caddy]:
    need("caddy")
    instance = Caddy.create(tmp_path / "caddy")
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


NGINX_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/conf.d/*.conf;
}}
"""


@dataclass
class Nginx:
    """A private nginx master (`daemon off`) reading `conf`, which includes `conf_dir`."""

    prefix: Path
    http_port: int
    https_port: int
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, prefix: Path) -> Nginx:
        for sub in ("conf.d", "tmp", "logs"):
            (prefix / sub).mkdir(parents=True)
        # As root the workers run as nobody unless told otherwise; they read nothing of ours.
        user = "user root;" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(NGINX_CONF.format(prefix=prefix, user=user))
        return cls(prefix, proxy_port(), proxy_port())

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def conf_dir(self) -> Path:
        return self.prefix / "conf.d"

    def proxy_config(self, **extra: Any) -> dict[str, Any]:
        return {
            "backend": "nginx",
            "nginx_dir": str(self.conf_dir),
            "nginx_conf": str(self.conf),
            "http_port": self.http_port,
            "https_port": self.https_port,
            **extra,
        }

    def start(self) -> None:
        binary = need("nginx")
        with (self.prefix / "nginx.out").open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "-p", str(self.prefix), "-c", str(self.conf), "-g", "daemon off;"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for(self._answers, "nginx")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"nginx exited:\n{self.log()}")
        return (self.prefix / "nginx.pid").exists()

    def log(self) -> str:
        text = ""
        for name in ("nginx.out", "error.log"):
            with contextlib.suppress(OSError):
                text += (self.prefix / name).read_text(errors="replace")[-3000:]
        return text

    def stop(self) -> None:
        kill(self.process)
        self.process = None


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    need("nginx")
    instance = Nginx.create(tmp_path / "nginx")
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(params=["caddy", "nginx"])
def any_proxy(request: pytest.FixtureRequest) -> Caddy | Nginx:
    """Each backend in turn (a sync fixture: the proxies start outside the event loop)."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


# -- the routes API through a real proxy (test_routes_api.py with Caddy, test_nginx_api.py) -----

# What the issue lists as bad domains: each is a 400 and changes no proxy config.
BAD_DOMAINS = ["evil.com {\n}\n:2019 {", "a b.com", "x.com;include /etc/passwd", "bad.com:8080",
               "-bad.com", "a" * 300, "a" * 64 + ".com", "", "*.*.x.com"]  # fmt: skip


def static(repo: Path, name: str, **extra: Any) -> dict[str, Any]:
    """A static site from a local repo (the routes tests' app)."""
    return {"name": name, "source": "local", "path": str(repo), "runtime": "static",
            "port": 8080, **extra}  # fmt: skip


async def through(
    proxy: Caddy | Nginx, path: str = "/", host: str = "web.localhost"
) -> tuple[int, str]:
    """GET through the proxy's HTTP port with `Host: host`."""
    return await asyncio.to_thread(get, proxy.http_port, host, path)


async def deploy_live(
    client: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    body: dict[str, Any],
) -> dict[str, Any]:
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    live = await wait_done(client, auth, (await resp.json())["id"])
    assert live["status"] == "live", live
    return live
