"""What a running daemon has imported: libraries it only needs for work stay out until that work.

The daemon is a real `dployr serve` with a real engine answering (so reconcile and /health/ready
talk to it); PYTHONPROFILEIMPORTTIME makes it log every module it imports, as it imports it."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.conftest import Daemon, daemon_env
from tests.unit.test_footprint import DEFERRED, FIRST_REQUEST


def imported(log: Path) -> set[str]:
    """Top-level packages named by the `-X importtime` lines of the daemon's output so far."""
    names = set()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_idle_daemon_and_api_calls_leave_heavy_libraries_unloaded(
    docker_engine: None, tmp_path: Path, data_dir: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    daemon = Daemon(data_dir, config, daemon_env(data_dir, PYTHONPROFILEIMPORTTIME="1"))
    try:
        daemon.start()
        assert daemon.request("GET", "/health/ready")[0] == 200  # the engine answered
        assert daemon.log is not None
        idle = imported(daemon.log)
        assert "aiohttp" in idle  # the log is read right
        for _ in range(300):  # the managed databases' reconcile reads the engine, once it ends
            if "managed databases reconciled" in daemon.log.read_text(errors="replace"):
                break
            time.sleep(0.05)
        idle = imported(daemon.log)
        assert "managed databases reconciled" in daemon.log.read_text(errors="replace")
        heavy = idle & (DEFERRED | FIRST_REQUEST)
        assert not heavy, f"an idle daemon imported {sorted(heavy)}"

        token = daemon.admin_token()
        status, _ = daemon.request("POST", "/api/v1/projects", {"name": "web"}, token)
        assert status == 201
        status, page = daemon.request("GET", "/api/v1/projects", token=token)
        assert status == 200 and page["total"] == 1
        used = imported(daemon.log)
        assert used >= FIRST_REQUEST  # the names above are the ones the daemon really imports
        assert not used & DEFERRED, f"API calls imported {sorted(used & DEFERRED)}"
    finally:
        if daemon.process is not None:
            daemon.stop()
