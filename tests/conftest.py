"""Shared fixtures: a blocking-call guard on every test, a real app on a real SQLite file."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from aiohttp.test_utils import TestClient
from blockbuster import BlockBuster, blockbuster_ctx

from dployr.app import create_app
from dployr.config import AuthConfig, Config, ProxyConfig, RateLimitConfig, ServerConfig

PASSWORD = "correct horse battery"


def require_tool(name: str, how: str) -> None:
    """A test that needs `name` on the PATH: a failure in CI (`how` says what installs it),
    a skip on a developer's machine without it."""
    if shutil.which(name) is None:
        missing(f"{name} is missing", how)


def missing(what: str, how: str) -> NoReturn:
    """Something a test needs is not on this machine: a failure in CI (where scripts/provision
    must have made it), a skip on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} ({how})")
    pytest.skip(f"{what} ({how})")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Networks an earlier run left (a killed one never cleaned up by label) would eat the
    engine's address pools (about 30 bridge networks): remove those with no container."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            ["docker", "network", "prune", "-f", "--filter", "label=dployr.agent"],
            capture_output=True,
            timeout=60,
        )


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout's wheel (`pip wheel --no-deps`), built once per session: tests/box installs
    it in its boxes, tests/integration/test_packaging into a fresh venv."""
    from tests.box.vps import build_wheel

    return build_wheel(Path(__file__).resolve().parents[1], tmp_path_factory.mktemp("wheel"))


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Any blocking call (file, socket, sleep) made on the event loop fails the test."""
    with blockbuster_ctx() as guard:
        yield guard


def make_config(data_dir: Path, **sections: dict[str, Any]) -> Config:
    """A Config for tests: data in data_dir, cheap bcrypt, rate limits generous unless set."""
    config = Config(
        server=ServerConfig(data_dir=str(data_dir)),
        auth=AuthConfig(bcrypt_rounds=4),
        rate_limit=RateLimitConfig(
            authenticated_per_hour=100_000, anonymous_per_hour=100_000, login_per_15min=1000
        ),
        # Never the machine's own Caddy or nginx: proxy tests start private ones.
        proxy=ProxyConfig(backend="none"),
    )
    for name, values in sections.items():
        config = dataclasses.replace(
            config, **{name: dataclasses.replace(getattr(config, name), **values)}
        )
    return config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "data")


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> TestClient:  # type: ignore[type-arg]
    return await aiohttp_client(create_app(config))


async def register(
    client: TestClient,  # type: ignore[type-arg]
    email: str = "admin@example.com",
    name: str = "Admin",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    resp = await client.post(
        "/api/v1/auth/register",
        json={"name": name, "email": email, "password": PASSWORD},
        headers=headers or {},
    )
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def login(client: TestClient, email: str = "admin@example.com") -> dict[str, Any]:  # type: ignore[type-arg]
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin(client: TestClient) -> dict[str, str]:  # type: ignore[type-arg]
    """The first user (an admin), logged in: Authorization headers."""
    await register(client)
    return bearer((await login(client))["access_token"])


async def user_headers(
    client: TestClient,  # type: ignore[type-arg]
    admin_headers: dict[str, str],
    email: str,
) -> dict[str, str]:
    """A second, ordinary user created by the admin, logged in."""
    await register(client, email=email, name=email.split("@")[0], headers=admin_headers)
    return bearer((await login(client, email))["access_token"])


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A `git daemon` on loopback serving tmp_path/srv: (that directory, its port)."""
    base = tmp_path / "srv"
    base.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", f"--base-path={base}", "--export-all",
         f"--port={port}", "--listen=127.0.0.1", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # `git daemon` runs git-daemon as a child: kill the group
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "git daemon did not start"
            time.sleep(0.05)
        yield base, port
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()
