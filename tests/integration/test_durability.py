"""kill -9 in the middle of a burst of writes, and an online backup while writes go on."""

from __future__ import annotations

import signal
import sqlite3
import tarfile
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Daemon, integrity, run_dployr

pytestmark = pytest.mark.integration

WRITERS = 6
MAX_BURST_SECONDS = 60


class Burst:
    """Threads that create projects as fast as they can and remember every 201."""

    def __init__(self, daemon: Daemon, token: str) -> None:
        self.daemon, self.token = daemon, token
        self.acknowledged: list[str] = []
        self.failures: list[tuple[int, object]] = []  # answers other than 201 while alive
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.started = 0.0
        self.threads = [
            threading.Thread(target=self._write, args=(n,), daemon=True) for n in range(WRITERS)
        ]

    def _write(self, writer: int) -> None:
        deadline = time.monotonic() + MAX_BURST_SECONDS
        for i in range(1_000_000):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            name = f"w{writer}-{i}"
            try:
                status, body = self.daemon.request(
                    "POST", "/api/v1/projects", {"name": name}, self.token, timeout=10
                )
            except OSError:
                return  # the daemon is gone (connection refused or reset)
            with self.lock:
                if status == 201:
                    self.acknowledged.append(name)
                else:
                    self.failures.append((status, body))

    def __enter__(self) -> Burst:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def alive(self) -> int:
        return sum(thread.is_alive() for thread in self.threads)

    def snapshot(self) -> set[str]:
        with self.lock:
            return set(self.acknowledged)

    def wait_for(self, n: int, at_least: float = 0.0, timeout: float = 20) -> None:
        """Until n writes are acknowledged and the burst has run for at_least seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.snapshot()) >= n and time.monotonic() - self.started >= at_least:
                return
            time.sleep(0.02)
        raise AssertionError(f"only {len(self.snapshot())} writes in {timeout} s: {self.failures}")


def listed_names(daemon: Daemon, token: str) -> set[str]:
    names: set[str] = set()
    for page in range(1, 10_000):
        status, body = daemon.request(
            "GET", f"/api/v1/projects?per_page=100&page={page}", None, token
        )
        assert status == 200, body
        names.update(p["name"] for p in body["items"])
        if page >= body["total_pages"]:
            assert len(names) == body["total"]
            return names
    raise AssertionError("too many pages")


def test_kill_9_mid_burst_loses_no_acknowledged_write(daemon: Daemon) -> None:
    daemon.start()
    token = daemon.admin_token()
    with Burst(daemon, token) as burst:
        burst.wait_for(200, at_least=1.0)
        assert burst.alive() == WRITERS  # the writers are still going
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    acknowledged = burst.snapshot()
    assert not burst.failures, burst.failures[:5]
    assert len(acknowledged) >= 200

    # The same data dir, untouched since the kill: the daemon must start and recover.
    daemon.start()
    assert integrity(daemon.data_dir / "dployr.db") == "ok"
    # The access token from before the crash still works: its key and session survived.
    missing = acknowledged - listed_names(daemon, token)
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:5]}"
    status, _ = daemon.request("POST", "/api/v1/projects", {"name": "after-restart"}, token)
    assert status == 201


def test_online_backup_during_writes(daemon: Daemon, tmp_path: Path) -> None:
    daemon.start()
    token = daemon.admin_token()
    target = tmp_path / "backup.tar.gz"
    with Burst(daemon, token) as burst:
        burst.wait_for(100)
        before = burst.snapshot()
        result = run_dployr("backup", "--config", str(daemon.config), str(target), env=daemon.env)
        during = burst.snapshot()
        assert result.returncode == 0, result.stderr
        assert burst.alive() == WRITERS
        burst.wait_for(len(during) + 20)  # and the daemon kept taking writes after the copy
    assert not burst.failures, burst.failures[:5]
    assert len(during) > len(before), "no write was acknowledged while the backup ran"
    assert target.stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".dployr-backup-*"))  # its staging folder is gone
    with tarfile.open(target) as tar:
        tar.extract("dployr.db", tmp_path / "unpacked", filter="data")
    copy = tmp_path / "unpacked" / "dployr.db"
    assert integrity(copy) == "ok"
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
        names = {row[0] for row in conn.execute("SELECT name FROM projects")}
    finally:
        conn.close()
    lost = before - names
    assert not lost, f"{len(lost)} writes acknowledged before the backup are missing"
