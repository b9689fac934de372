"""A real `dployr serve` killed with SIGKILL: its databases (and one it was creating) run again
with their data after the next start."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.docker.conftest import cleanup_agent
from tests.integration.conftest import Daemon, daemon_env, empty_config
from tests.integration.test_late_engine import EngineRelay

__all__ = ["empty_config"]  # a fixture of tests/integration


@pytest.fixture
def db_daemon(tmp_path: Path, empty_config: Path, engine_images: None) -> Any:
    data_dir = tmp_path / "data"
    extra = {"DPLOYR_METRICS_INTERVAL": "3600"}
    process = Daemon(data_dir, empty_config, daemon_env(data_dir, **extra))
    try:
        yield process
    finally:
        process.kill()
        cleanup_agent(data_dir)


def wait_database(daemon: Daemon, token: str, database_id: str, limit: float = 300) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + limit
    while True:
        status, body = daemon.request("GET", f"/api/v1/databases/{database_id}", token=token)
        assert status == 200, body
        if body["status"] in ("running", "failed", "stopped"):
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def containers_of(daemon: Daemon, database_id: str) -> list[str]:
    agent = (daemon.data_dir / "agent_id").read_text().strip()
    return subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=dployr.agent={agent}",
         "--filter", f"label=dployr.database={database_id}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip


def psql(container: str, record: dict[str, Any], password: str, sql: str) -> str:
    return subprocess.run(
        ["docker", "exec", "-e", f"PGPASSWORD={password}", container, "psql", "-h", "127.0.0.1",
         "-U", record["username"], "-d", record["database"], "-tA", "-c", sql],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def test_databases_survive_a_kill_9_of_the_daemon(db_daemon: Daemon) -> None:
    db_daemon.start()
    token = db_daemon.admin_token()
    status, made = db_daemon.request(
        "POST", "/api/v1/databases", {"name": "pg", "engine": "postgres"}, token=token
    )
    assert status == 202, made
    record = wait_database(db_daemon, token, made["id"])
    assert record["status"] == "running", record
    [container] = containers_of(db_daemon, record["id"])
    psql(container, record, made["password"], "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('x')")
    # A second one is being created when the daemon dies.
    status, half = db_daemon.request(
        "POST", "/api/v1/databases", {"name": "half", "engine": "redis"}, token=token
    )
    assert status == 202, half
    db_daemon.stop(signal.SIGKILL)
    # And the first one's container goes while the daemon is down.
    subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=True)

    db_daemon.start()
    token = db_daemon.admin_token()
    back = wait_database(db_daemon, token, record["id"])
    assert back["status"] == "running" and back["host_port"] == record["host_port"], back
    deadline = time.monotonic() + 300
    while True:  # reconcile makes it again (in the background), from its volume
        found = containers_of(db_daemon, record["id"])
        try:
            if found:
                assert psql(found[0], record, made["password"], "SELECT v FROM t") == "x"
                break
        except subprocess.CalledProcessError:  # still starting
            pass
        assert time.monotonic() < deadline, found
        time.sleep(0.5)
    assert found != [container]
    finished = wait_database(db_daemon, token, half["id"])
    assert finished["status"] == "running", finished
    assert len(containers_of(db_daemon, half["id"])) == 1
    status, listed = db_daemon.request("GET", "/api/v1/databases", token=token)
    assert status == 200 and listed["total"] == 2
    # The passwords appear in no list, no event and no line the daemon logged.
    logs = "".join(p.read_text() for p in db_daemon.data_dir.parent.glob("daemon-*.log"))
    conn = sqlite3.connect(f"file:{db_daemon.data_dir / 'dployr.db'}?mode=ro", uri=True)
    try:
        events = [str(row) for row in conn.execute("SELECT type, data FROM events")]
    finally:
        conn.close()
    assert any("database.created" in event for event in events)
    for password in (made["password"], half["password"]):
        assert password not in str(listed) and password not in logs
        assert not any(password in event for event in events)


def test_a_late_engine_brings_the_databases_back_when_it_answers(
    tmp_path: Path, empty_config: Path, engine_images: None
) -> None:
    relay = EngineRelay(tmp_path / "engine.sock")
    relay.open()
    data_dir = tmp_path / "data"
    env = daemon_env(
        data_dir,
        DPLOYR_METRICS_INTERVAL="3600",
        DPLOYR_RUNTIME_DOCKER_HOST=f"unix://{relay.path}",
    )
    daemon = Daemon(data_dir, empty_config, env)
    try:
        daemon.start()
        token = daemon.admin_token()
        body = {"name": "cache", "engine": "redis"}
        status, made = daemon.request("POST", "/api/v1/databases", body, token=token)
        assert status == 202, made
        assert wait_database(daemon, token, made["id"])["status"] == "running"
        [container] = containers_of(daemon, made["id"])
        redis = ["docker", "exec", "-e", f"REDISCLI_AUTH={made['password']}", container,
                 "redis-cli", "-h", "127.0.0.1"]  # fmt: skip
        subprocess.run([*redis, "SET", "k", "v"], capture_output=True, check=True)
        subprocess.run([*redis, "SAVE"], capture_output=True, check=True)
        daemon.stop(signal.SIGKILL)
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=True)

        relay.close()  # the engine is down when the daemon starts again
        daemon.start()
        token = daemon.admin_token()
        status, refused = daemon.request(
            "POST", "/api/v1/databases", {"name": "other", "engine": "redis"}, token=token
        )
        assert status == 503 and refused["error"]["code"] == "unavailable", refused
        time.sleep(3)  # more than one engine poll: nothing is made meanwhile
        assert containers_of(daemon, made["id"]) == []

        relay.open()  # the engine comes up: the database comes back, with no restart
        deadline = time.monotonic() + 120
        while True:
            found = containers_of(daemon, made["id"])
            get = ["docker", "exec", "-e", f"REDISCLI_AUTH={made['password']}"]
            answer = (
                subprocess.run(
                    [*get, found[0], "redis-cli", "-h", "127.0.0.1", "GET", "k"],
                    capture_output=True, text=True,
                ).stdout.strip()
                if found
                else ""
            )  # fmt: skip
            if answer == "v":
                break
            assert time.monotonic() < deadline, (found, answer)
            time.sleep(0.5)
    finally:
        daemon.kill()
        relay.close()
        cleanup_agent(data_dir)
