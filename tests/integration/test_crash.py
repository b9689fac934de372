"""kill -9 of the daemon in the middle of a build, then a restart: a consistent state, no
orphans, and the live release kept serving the whole time (SPEC §9)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.docker.conftest import STATIC_APP, agent_containers, agent_images, commit, make_repo
from tests.integration.conftest import Daemon, deploy_live, page, wait_status


def test_kill_9_mid_build_then_restart_is_consistent(deploy_daemon: Daemon, tmp_path: Path) -> None:
    daemon = deploy_daemon
    daemon.start()
    token = daemon.admin_token()
    repo = make_repo(tmp_path / "app", STATIC_APP)
    body = {"name": "web", "source": "local", "path": str(repo), "runtime": "static"}
    first = deploy_live(daemon, token, body)
    port = first["host_port"]
    assert page(port) == "hello v1\n"

    commit(repo, {"index.html": "hello v2\n"}, "v2")
    slow = {**body, "build_cmd": "echo slow build; sleep 60"}
    status, second = daemon.request("POST", "/api/v1/deployments", slow, token=token)
    assert status == 202
    wait_status(daemon, token, second["id"], {"building"})
    deadline = time.monotonic() + 60
    while "slow build" not in str(
        daemon.request("GET", f"/api/v1/deployments/{second['id']}/logs", token=token)[1]
    ):
        assert time.monotonic() < deadline, "the slow build never started its RUN step"
        time.sleep(0.2)

    daemon.stop(signal.SIGKILL)
    assert page(port) == "hello v1\n"  # the app keeps serving while the daemon is down

    daemon.start()
    token = daemon.admin_token()
    failed = wait_status(daemon, token, second["id"], {"failed"}, limit=10)
    assert "interrupted" in failed["error"], failed
    assert {s["name"]: s["status"] for s in failed["stages"]}["building"] == "failed"
    status, service = daemon.request("GET", f"/api/v1/services/{first['service_id']}", token=token)
    assert service["current_deployment_id"] == first["id"]
    assert service["status"] == "running" and service["host_port"] == port
    assert page(port) == "hello v1\n"
    # No orphans: the live container only, and no image of the interrupted release.
    deadline = time.monotonic() + 20
    while len(agent_containers(daemon.data_dir)) != 1:
        assert time.monotonic() < deadline, agent_containers(daemon.data_dir)
        time.sleep(0.2)
    assert not any(tag.endswith(":2") for tag in agent_images(daemon.data_dir))

    # A container lost while the daemon is down comes back at the next start.
    daemon.stop(signal.SIGKILL)
    subprocess.run(["docker", "rm", "-f", service["container_id"]], check=True, capture_output=True)
    daemon.start()
    token = daemon.admin_token()
    status, service = daemon.request("GET", f"/api/v1/services/{first['service_id']}", token=token)
    assert service["status"] == "running" and service["host_port"] == port, service
    assert page(port) == "hello v1\n"

    # And the next deploy works.
    status, third = daemon.request("POST", "/api/v1/deployments", body, token=token)
    third = wait_status(daemon, token, third["id"], {"live", "failed"})
    assert third["status"] == "live", third
    assert page(third["host_port"]) == "hello v2\n"


def test_sigterm_mid_build_cleans_up_and_keeps_queued_work(
    deploy_daemon: Daemon, tmp_path: Path
) -> None:
    daemon = deploy_daemon
    daemon.start()
    token = daemon.admin_token()
    repo = make_repo(tmp_path / "app", STATIC_APP)
    slow = {"name": "web", "source": "local", "path": str(repo), "runtime": "static",
            "build_cmd": "echo slow build; sleep 60"}  # fmt: skip
    status, running = daemon.request("POST", "/api/v1/deployments", slow, token=token)
    assert status == 202
    quick = {key: value for key, value in slow.items() if key != "build_cmd"}
    status, queued = daemon.request("POST", "/api/v1/deployments", quick, token=token)
    assert status == 202
    wait_status(daemon, token, running["id"], {"building"})

    assert daemon.stop(signal.SIGTERM, timeout=20) == 0
    assert agent_containers(daemon.data_dir) == []

    daemon.start()
    token = daemon.admin_token()
    failed = wait_status(daemon, token, running["id"], {"failed"}, limit=10)
    assert "interrupted" in failed["error"]
    resumed = wait_status(daemon, token, queued["id"], {"live", "failed"})
    assert resumed["status"] == "live", resumed  # accepted work survives the stop
    assert page(resumed["host_port"]) == "hello v1\n"
