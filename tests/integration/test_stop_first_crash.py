"""kill -9 of the daemon in a stop-first gap (the old instance stopped, the new one not live
yet): the next start fails the interrupted release, removes its container and brings the live
release back on its volume's data (SPEC §9, §14)."""

from __future__ import annotations

import signal
import time
import urllib.request
from pathlib import Path

from tests.docker.conftest import agent_containers, commit, make_repo
from tests.docker.test_volumes import APP, VOLUMES
from tests.integration.conftest import Daemon, deploy_live, wait_status


def hit(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/cgi-bin/hit", timeout=5) as resp:
        return str(resp.read().decode())


def test_a_kill_9_in_the_stop_first_gap_brings_the_live_release_back(
    deploy_daemon: Daemon, tmp_path: Path
) -> None:
    daemon = deploy_daemon
    daemon.start()
    token = daemon.admin_token()
    repo = make_repo(tmp_path / "app", APP)
    body = {"name": "notes", "source": "local", "path": str(repo), "runtime": "dockerfile",
            "port": 8080, "health_check": {"path": "/index.html", "timeout": 60},
            "volumes": VOLUMES, "strategy": "stop-first"}  # fmt: skip
    first = deploy_live(daemon, token, body)
    assert hit(first["host_port"]) == "r1\n"
    status, before = daemon.request("GET", f"/api/v1/services/{first['service_id']}", token=token)
    old = before["container_id"][:12]

    # Release 2 listens only after 60 s: the daemon dies while it waits for it.
    commit(repo, {"release": "r2\n"}, "r2")
    status, second = daemon.request(
        "POST", "/api/v1/deployments", {**body, "env": {"DELAY": "60"}}, token=token
    )
    assert status == 202, second
    wait_status(daemon, token, second["id"], {"health_checking"})
    assert old not in agent_containers(daemon.data_dir, all_=False)  # stopped first
    daemon.stop(signal.SIGKILL)

    daemon.start()
    token = daemon.admin_token()
    failed = wait_status(daemon, token, second["id"], {"failed"}, limit=30)
    assert "interrupted" in failed["error"], failed
    sid = first["service_id"]
    deadline = time.monotonic() + 60
    while True:
        status, service = daemon.request("GET", f"/api/v1/services/{sid}", token=token)
        if service["status"] == "running" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert service["current_deployment_id"] == first["id"], service
    assert service["status"] == "running", service
    assert hit(service["host_port"]) == "r1\nr1\n"  # release 1 again, on the same data
    assert agent_containers(daemon.data_dir) == [service["container_id"][:12]]
