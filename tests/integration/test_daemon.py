"""`dployr serve`, `migrate`, `admin create-user` and bad configs, as real processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import (
    PASSWORD,
    Daemon,
    daemon_env,
    free_port,
    integrity,
    run_dployr,
)

pytestmark = pytest.mark.integration


def test_serve_answers_and_sigterm_exits_zero(daemon: Daemon) -> None:
    began = time.monotonic()
    daemon.start(timeout=10)
    assert time.monotonic() - began < 10
    status, body = daemon.request("GET", "/health")
    assert status == 200 and body["status"] == "ok"

    began = time.monotonic()
    assert daemon.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - began < 10
    db = daemon.data_dir / "dployr.db"
    assert integrity(db) == "ok"
    # A clean stop checkpoints the WAL into the main file.
    wal = daemon.data_dir / "dployr.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    assert (daemon.data_dir / "secrets" / "jwt.key").stat().st_mode & 0o777 == 0o600


def test_what_the_daemon_writes_is_its_own_whatever_the_umask(daemon: Daemon) -> None:
    # Started by hand from a shell with the usual umask: the database is still not readable
    # by the apps' users (the systemd target makes the data dir 0711 for them).
    before = os.umask(0o022)
    try:
        daemon.start(timeout=10)
    finally:
        os.umask(before)
    assert daemon.stop(signal.SIGTERM, timeout=10) == 0
    for name in ("dployr.db", "agent_id", "secrets/secrets.key"):
        assert (daemon.data_dir / name).stat().st_mode & 0o077 == 0, name


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("[server]\nbogus = 1\n", {}, "server.bogus"),
        ('[server]\nport = "abc"\n', {}, "server.port"),
        ("[nonsense]\nx = 1\n", {}, "nonsense"),
        ("[runtime]\ndefault_target = 'k8s'\n", {}, "runtime.default_target"),
        ("[server\n", {}, "not valid TOML"),
        ("", {"DPLOYR_SERVER_PORT": "not-a-port"}, "DPLOYR_SERVER_PORT"),
        ("", {"DPLOYR_SERVER_PORT": "70000"}, "server.port"),
        ("", {"DPLOYR_RATE_LIMIT_ENABLED": "maybe"}, "DPLOYR_RATE_LIMIT_ENABLED"),
    ],
)
def test_bad_config_stops_the_start_with_a_clear_message(
    tmp_path: Path, text: str, env: dict[str, str], named: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    # --port: should the bad value be accepted after all, no shared port is taken.
    result = run_dployr(
        "serve",
        "--config",
        str(config),
        "--port",
        str(free_port()),
        env=daemon_env(tmp_path / "data", **env),
        timeout=20,
    )
    assert result.returncode != 0, result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "dployr.db").exists()  # refused before touching anything


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = run_dployr("migrate", "--config", str(missing), env=daemon_env(tmp_path / "data"))
    assert result.returncode != 0
    assert str(missing) in result.stderr and "Traceback" not in result.stderr


def test_migrate_creates_the_database_and_is_idempotent(tmp_path: Path, empty_config: Path) -> None:
    data = tmp_path / "data"
    env = daemon_env(data)
    db = data / "dployr.db"
    assert not data.exists()
    versions = []
    for _ in range(2):
        result = run_dployr("migrate", "--config", str(empty_config), env=env)
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout
        assert integrity(db) == "ok"
        conn = sqlite3.connect(db)
        try:
            versions.append([r[0] for r in conn.execute("SELECT version FROM schema_migrations")])
        finally:
            conn.close()
    assert versions[0] and versions[0] == versions[1]
    assert data.stat().st_mode & 0o777 == 0o700


def test_a_newer_schema_is_refused(tmp_path: Path, empty_config: Path) -> None:
    env = daemon_env(tmp_path / "data")
    result = run_dployr("migrate", "--config", str(empty_config), env=env)
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(tmp_path / "data" / "dployr.db")
    with conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', '2030-01-01T00:00:00Z')")
    conn.close()
    for command in (["serve", "--port", str(free_port())], ["migrate"]):
        result = run_dployr(*command, "--config", str(empty_config), env=env, timeout=20)
        assert result.returncode != 0, (command, result.stderr)
        assert "999" in result.stderr and "newer than this dployr" in result.stderr
        assert "Traceback" not in result.stderr


def create_user(
    config: Path, env: dict[str, str], email: str, password: str
) -> subprocess.CompletedProcess[str]:
    return run_dployr(
        "admin",
        "create-user",
        "--config",
        str(config),
        "--email",
        email,
        "--name",
        "Ops",
        "--password-stdin",
        env=env,
        stdin=password + "\n",
    )


def test_admin_create_user_then_log_in(daemon: Daemon) -> None:
    result = create_user(daemon.config, daemon.env, "Ops@Example.com", PASSWORD)
    assert result.returncode == 0, result.stderr
    assert "created admin ops@example.com" in result.stdout
    daemon.start()
    status, pair = daemon.request(
        "POST", "/api/v1/auth/login", {"email": "ops@example.com", "password": PASSWORD}
    )
    assert status == 200, pair
    assert pair["access_token"] and pair["user"]["role"] == "admin"
    status, me = daemon.request("GET", "/api/v1/auth/me", token=pair["access_token"])
    assert status == 200 and me["email"] == "ops@example.com"
    # The daemon runs; the CLI writes beside it (WAL, busy timeout) and duplicates are refused.
    again = create_user(daemon.config, daemon.env, "ops@example.com", PASSWORD)
    assert again.returncode != 0 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize("password", ["x" * 73, "é" * 40], ids=["73-ascii", "40-two-byte"])
def test_admin_create_user_refuses_a_password_over_72_bytes(
    tmp_path: Path, empty_config: Path, password: str
) -> None:
    env = daemon_env(tmp_path / "data")
    result = create_user(empty_config, env, "a@b.io", password)
    assert result.returncode != 0
    assert "72 bytes" in result.stderr and "Traceback" not in result.stderr
    db = tmp_path / "data" / "dployr.db"
    if db.exists():
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0
        finally:
            conn.close()
