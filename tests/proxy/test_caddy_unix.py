"""Caddy driven through an admin socket file (the swarm proxy's way), against a real Caddy."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dployr.config import ProxyConfig
from dployr.proxy.caddy import CaddyProxy, render_caddyfile
from dployr.proxy.detect import caddy_problem
from dployr.proxy.protocol import Route
from tests.conftest import make_config
from tests.proxy.conftest import kill, need, proxy_port, wait_for
from tests.proxy.test_caddy import Upstreams
from tests.proxy.test_caddy import upstream as upstream  # the fixture

pytestmark = pytest.mark.integration


@pytest.fixture
def home() -> Iterator[Path]:
    """A short path: a socket's path must fit in 108 bytes, pytest's tmp_path may not."""
    path = Path(tempfile.mkdtemp(prefix="dpc-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_caddyfile_listens_where_it_is_told() -> None:
    config = ProxyConfig(caddy_admin="unix//srv/x/admin.sock")
    assert "admin unix//srv/x/admin.sock\n" in render_caddyfile([], {}, config)
    # Where Caddy listens (inside a container) is not where dployr dials (the host's path).
    text = render_caddyfile([], {}, config, admin="unix//dployr/admin.sock")
    assert "admin unix//dployr/admin.sock\n" in text


async def test_applies_through_a_socket_file(home: Path, upstream: Upstreams) -> None:
    await asyncio.to_thread(need, "caddy")
    socket_path = home / "admin.sock"
    http_port, https_port = await asyncio.to_thread(lambda: (proxy_port(), proxy_port()))
    proxy_config = ProxyConfig(
        backend="caddy",
        caddy_admin=f"unix/{socket_path}",
        caddyfile=str(home / "Caddyfile"),
        http_port=http_port,
        https_port=https_port,
        tls_issuer="internal",
    )
    assert "does not answer" in str(await caddy_problem(proxy_config))
    process = await asyncio.to_thread(_start_caddy, home, socket_path)
    try:
        await asyncio.to_thread(wait_for, socket_path.exists, "caddy's admin socket")
        assert await caddy_problem(proxy_config) is None
        proxy = CaddyProxy(make_config(home / "data"), proxy=proxy_config)
        address = await upstream("a")
        route = Route("rte_a", "app.localhost", "/", "off", "svc_a")
        await proxy.apply([route], {"svc_a": [address]})
        text = await asyncio.to_thread((home / "Caddyfile").read_text)
        assert f"admin unix/{socket_path}\n" in text and f'"{address}"' in text
        status, body = await asyncio.to_thread(_get, proxy_config.http_port)
        assert status == 200 and '"name": "a"' in body
    finally:
        await asyncio.to_thread(kill, process)


def _start_caddy(home: Path, socket_path: Path) -> subprocess.Popen[bytes]:
    """A private Caddy whose only config is its admin socket."""
    (home / "initial.json").write_text(f'{{"admin": {{"listen": "unix/{socket_path}"}}}}')
    env = {**os.environ, "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "cfg")}
    with (home / "caddy.log").open("ab") as log:
        return subprocess.Popen(
            [need("caddy"), "run", "--config", str(home / "initial.json")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _get(port: int) -> tuple[int, str]:
    from tests.proxy.conftest import get

    return get(port, "app.localhost")
