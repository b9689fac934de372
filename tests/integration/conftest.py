"""Real `dployr` processes: start the daemon on a free loopback port with its own data dir."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.docker.conftest import cleanup_agent, engine_answers

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dployr_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dployr", *args]


@dataclass
class Daemon:
    """One `dployr serve` process; `request()` talks to it over loopback HTTP."""

    data_dir: Path
    config: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> None:
        self.log = self.data_dir.parent / f"daemon-{time.monotonic_ns()}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                dployr_command("serve", "--config", str(self.config), "--port", str(self.port)),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dployr serve exited early:\n{self.log.read_text()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"dployr serve did not answer /health:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL, when it still runs (a fixture's teardown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        timeout: float = 10,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, _decode(err.read())

    def admin_token(self, email: str = "admin@example.com") -> str:
        status, _ = self.request(
            "POST",
            "/api/v1/auth/register",
            {"name": "Admin", "email": email, "password": PASSWORD},
        )
        assert status in (201, 403), status
        status, pair = self.request(
            "POST", "/api/v1/auth/login", {"email": email, "password": PASSWORD}
        )
        assert status == 200, pair
        return str(pair["access_token"])


def _decode(raw: bytes) -> Any:
    """JSON when the body is JSON; the text otherwise (a stray HTML 500 must not crash a writer)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def integrity(db: Path) -> str:
    """`PRAGMA integrity_check` on a read-only connection: "ok" or what is wrong."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return "\n".join(str(row[0]) for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def daemon_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DPLOYR_")}
    env.update(
        DPLOYR_SERVER_DATA_DIR=str(data_dir),
        DPLOYR_AUTH_BCRYPT_ROUNDS="4",
        DPLOYR_RATE_LIMIT_ENABLED="false",
        DPLOYR_PROXY_BACKEND="none",
    )
    env.update(extra)
    return env


@pytest.fixture
def empty_config(tmp_path: Path) -> Path:
    """In a directory of its own, like /etc/dployr: local sources may not read it (SPEC §13)."""
    path = tmp_path / "etc" / "config.toml"
    path.parent.mkdir()
    path.write_text("# every key at its default\n")
    return path


@pytest.fixture
def daemon(tmp_path: Path, empty_config: Path) -> Iterator[Daemon]:
    data_dir = tmp_path / "data"
    process = Daemon(data_dir, empty_config, daemon_env(data_dir))
    try:
        yield process
    finally:
        process.kill()


def run_dployr(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        dployr_command(*args),
        env=env,
        input=stdin,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def deploy_daemon(tmp_path: Path, empty_config: Path) -> Iterator[Daemon]:
    if not engine_answers():
        pytest.fail("no Docker engine answers (scripts/provision starts one)")
    data_dir = tmp_path / "data"
    env = daemon_env(
        data_dir,
        DPLOYR_RUNTIME_ALLOW_LOCAL_SOURCES="true",
        DPLOYR_RUNTIME_DRAIN_SECONDS="0.2",
    )
    process = Daemon(data_dir, empty_config, env)
    try:
        yield process
    finally:
        process.kill()
        cleanup_agent(data_dir)


def wait_status(
    daemon: Daemon, token: str, deployment_id: str, wanted: set[str], limit: float = 120
) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status, body = daemon.request("GET", f"/api/v1/deployments/{deployment_id}", token=token)
        assert status == 200, body
        if body["status"] in wanted:
            return dict(body)
        time.sleep(0.1)
    raise AssertionError(f"{deployment_id} never reached {wanted}: {body}")


def page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return str(resp.read().decode())


def deploy_live(daemon: Daemon, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a deployment and wait until it is live (a failure fails the test)."""
    status, created = daemon.request("POST", "/api/v1/deployments", body, token=token)
    assert status == 202, created
    done = wait_status(daemon, token, created["id"], {"live", "failed"})
    assert done["status"] == "live", done
    return done
