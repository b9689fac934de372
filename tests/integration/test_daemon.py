"""`dployr serve`, `migrate`, `admin create-user` and bad configs, as real processes."""

from __future__ import annotations

import signal
import sqlite3

import pytest

from tests.integration.conftest import PASSWORD, daemon_env, run_dployr

pytestmark = pytest.mark.integration


def integrity(path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_serve_answers_and_sigterm_exits_zero(daemon):
    daemon.start()
    status, body = daemon.request("GET", "/health")
    assert status == 200 and body["status"] == "ok"
    assert daemon.stop(signal.SIGTERM) == 0
    assert integrity(daemon.data_dir / "dployr.db") == "ok"
    assert not (daemon.data_dir / "dployr.db-wal").exists() or (
        (daemon.data_dir / "dployr.db-wal").stat().st_size == 0
    )
    assert (daemon.data_dir / "secrets" / "jwt.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("[server]\nbogus = 1\n", {}, "server.bogus"),
        ('[server]\nport = "abc"\n', {}, "server.port"),
        ("[runtime]\ndefault_target = 'k8s'\n", {}, "runtime.default_target"),
        ("", {"DPLOYR_SERVER_PORT": "not-a-port"}, "DPLOYR_SERVER_PORT"),
    ],
)
def test_bad_config_stops_the_start_with_a_clear_message(tmp_path, text, env, named):
    config = tmp_path / "config.toml"
    config.write_text(text)
    result = run_dployr("serve", "--config", str(config), env=daemon_env(tmp_path / "data", **env))
    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_twice_then_a_newer_schema_is_refused(tmp_path, empty_config):
    env = daemon_env(tmp_path / "data")
    for _ in range(2):
        result = run_dployr("migrate", "--config", str(empty_config), env=env)
        assert result.returncode == 0, result.stderr
    db = tmp_path / "data" / "dployr.db"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', '2030-01-01T00:00:00Z')")
    conn.close()
    result = run_dployr("serve", "--config", str(empty_config), env=env)
    assert result.returncode != 0
    assert "newer than this dployr" in result.stderr
    assert "Traceback" not in result.stderr


def test_admin_create_user_then_log_in(daemon):
    result = run_dployr(
        "admin",
        "create-user",
        "--config",
        str(daemon.config),
        "--email",
        "Ops@Example.com",
        "--name",
        "Ops",
        "--password-stdin",
        env=daemon.env,
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert "created admin ops@example.com" in result.stdout
    daemon.start()
    status, pair = daemon.request(
        "POST", "/api/v1/auth/login", {"email": "ops@example.com", "password": PASSWORD}
    )
    assert status == 200 and pair["user"]["role"] == "admin"
    # The daemon runs; the CLI writes beside it (WAL, busy timeout) and duplicates are refused.
    again = run_dployr(
        "admin",
        "create-user",
        "--config",
        str(daemon.config),
        "--email",
        "ops@example.com",
        "--name",
        "Ops",
        "--password-stdin",
        env=daemon.env,
        stdin=PASSWORD + "\n",
    )
    assert again.returncode != 0 and "already exists" in again.stderr


def test_admin_create_user_refuses_a_long_password(tmp_path, empty_config):
    result = run_dployr(
        "admin",
        "create-user",
        "--config",
        str(empty_config),
        "--email",
        "a@b.io",
        "--name",
        "A",
        "--password-stdin",
        env=daemon_env(tmp_path / "data"),
        stdin="x" * 80 + "\n",
    )
    assert result.returncode != 0
    assert "72 bytes" in result.stderr and "Traceback" not in result.stderr
