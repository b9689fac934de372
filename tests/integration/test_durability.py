"""kill -9 in the middle of a burst of writes, and an online backup while writes go on."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

import pytest

from tests.integration.conftest import run_dployr

pytestmark = pytest.mark.integration

WRITERS = 6


class Burst:
    """Threads that create projects as fast as they can and remember every 201."""

    def __init__(self, daemon, token: str) -> None:
        self.daemon, self.token = daemon, token
        self.acknowledged: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._write, args=(n,)) for n in range(WRITERS)]

    def _write(self, writer: int) -> None:
        for i in range(100_000):
            if self.stop.is_set():
                return
            name = f"w{writer}-{i}"
            try:
                status, _ = self.daemon.request(
                    "POST", "/api/v1/projects", {"name": name}, self.token, timeout=5
                )
            except OSError:
                return  # the daemon is gone
            if status == 201:
                with self.lock:
                    self.acknowledged.append(name)

    def __enter__(self) -> Burst:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)

    def wait_for(self, n: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.count() >= n, f"only {self.count()} writes in {timeout} s"


def listed_names(daemon, token: str) -> set[str]:
    names: set[str] = set()
    for page in range(1, 10_000):
        status, body = daemon.request(
            "GET", f"/api/v1/projects?per_page=100&page={page}", None, token
        )
        assert status == 200, body
        names.update(p["name"] for p in body["items"])
        if page >= body["total_pages"]:
            return names
    raise AssertionError("too many pages")


def test_kill_9_mid_burst_loses_no_acknowledged_write(daemon):
    daemon.start()
    token = daemon.admin_token()
    with Burst(daemon, token) as burst:
        burst.wait_for(200)
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    acknowledged = set(burst.acknowledged)
    assert len(acknowledged) >= 200
    conn = sqlite3.connect(daemon.data_dir / "dployr.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    daemon.start()
    token = daemon.admin_token()
    missing = acknowledged - listed_names(daemon, token)
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:5]}"


def test_online_backup_during_writes(daemon, tmp_path):
    daemon.start()
    token = daemon.admin_token()
    target = tmp_path / "backup.db"
    with Burst(daemon, token) as burst:
        burst.wait_for(100)
        with burst.lock:
            before = set(burst.acknowledged)
        result = run_dployr("backup", "--config", str(daemon.config), str(target), env=daemon.env)
        assert result.returncode == 0, result.stderr
        burst.wait_for(len(before) + 50)  # writes went on during and after the copy
    assert target.stat().st_mode & 0o777 == 0o600
    conn = sqlite3.connect(target)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        names = {row[0] for row in conn.execute("SELECT name FROM projects")}
    finally:
        conn.close()
    assert before <= names
