"""A storm of cancels on one service (a real daemon, the real engine): afterwards exactly the
live release runs, every deployment has ended, and the store still writes."""

from __future__ import annotations

import random
import time
from pathlib import Path

from tests.docker.conftest import STATIC_APP, agent_containers, make_repo
from tests.integration.conftest import Daemon, deploy_live, page

FINISHED = {"live", "failed", "cancelled", "superseded", "rolled_back"}
STORM = 16


def test_a_cancel_storm_leaves_exactly_the_live_release(
    deploy_daemon: Daemon, tmp_path: Path
) -> None:
    daemon = deploy_daemon
    daemon.start()
    token = daemon.admin_token()
    repo = make_repo(tmp_path / "app", STATIC_APP)
    body = {"name": "web", "source": "local", "path": str(repo), "runtime": "static"}
    first = deploy_live(daemon, token, body)

    rng = random.Random(2026)  # the same storm each run
    ids, answers = [], []
    for _ in range(STORM):
        status, created = daemon.request("POST", "/api/v1/deployments", body, token=token)
        assert status == 202, created
        ids.append(created["id"])
        time.sleep(rng.uniform(0, 0.5))
        status, answer = daemon.request(
            "DELETE", f"/api/v1/deployments/{created['id']}", token=token
        )
        # 204: cancelled (or, when it had already failed, removed); 409: it went live first.
        assert status in (204, 409), (status, answer)
        answers.append(status)

    # Every deployment ends: nothing is left queued or half-way.
    deadline = time.monotonic() + 60
    while True:
        status, listed = daemon.request("GET", "/api/v1/deployments?per_page=100", token=token)
        assert status == 200, listed
        open_ = [d for d in listed["items"] if d["status"] not in FINISHED]
        if not open_:
            break
        assert time.monotonic() < deadline, open_
        time.sleep(0.2)
    cancelled = [d for d in listed["items"] if d["status"] == "cancelled"]
    assert cancelled, "the storm cancelled nothing: it did not test anything"

    status, service = daemon.request("GET", f"/api/v1/services/{first['service_id']}", token=token)
    assert status == 200 and service["status"] == "running", service
    live = [d for d in listed["items"] if d["status"] == "live"]
    assert [d["id"] for d in live] == [service["current_deployment_id"]], live
    # Exactly the live release runs: one container of this agent, the service's own.
    deadline = time.monotonic() + 30  # a retired release may still be draining
    while len(containers := agent_containers(daemon.data_dir, all_=True)) != 1:
        assert time.monotonic() < deadline, containers
        time.sleep(0.2)
    assert service["container_id"].startswith(containers[0])
    assert page(service["host_port"]) == "hello v1\n"

    # The store still writes, and the service still deploys.
    status, project = daemon.request("POST", "/api/v1/projects", {"name": "after"}, token=token)
    assert status == 201, project
    deploy_live(daemon, token, body)
