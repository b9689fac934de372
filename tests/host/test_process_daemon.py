"""The process target through a real `dployr serve`: blue/green, rollback without a rebuild,
logs, restarts in status, and a kill -9 of the daemon that leaves no app running."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from dployr.runtime.process import MARKER
from tests.docker.conftest import commit, make_repo
from tests.integration.conftest import Daemon, daemon_env, deploy_live, page, wait_status

APP = """\
import http.server, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = VERSION.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

VERSION = "v1\\n"
print("starting", VERSION.strip(), "pid", os.getpid(), flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture
def process_daemon(tmp_path: Path) -> Iterator[Daemon]:
    data_dir = tmp_path / "data"
    config = tmp_path / "etc" / "config.toml"  # its own dir, like /etc/dployr
    config.parent.mkdir()
    config.write_text("# every key at its default\n")
    env = daemon_env(
        data_dir,
        DPLOYR_RUNTIME_DEFAULT_TARGET="process",
        DPLOYR_RUNTIME_ALLOW_LOCAL_SOURCES="true",
        DPLOYR_RUNTIME_DRAIN_SECONDS="0.2",
    )
    daemon = Daemon(data_dir, config, env)
    try:
        yield daemon
    finally:
        daemon.kill()
        for process in app_processes(data_dir):  # a failed test leaves nothing running
            process.kill()


def app_processes(data_dir: Path) -> list[psutil.Process]:
    """Every process that runs an app of this daemon (the marker is in its environment, and
    its working directory is in the daemon's data dir)."""
    found = []
    for process in psutil.process_iter():
        try:
            if MARKER in process.environ() and str(data_dir) in process.cwd():
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_for(check, what: str, limit: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"never: {what}")


def answers(port: int) -> bool:
    try:
        page(port)
    except OSError:
        return False
    return True


def test_the_process_target_end_to_end(process_daemon: Daemon, tmp_path: Path) -> None:
    daemon = process_daemon
    daemon.start()
    token = daemon.admin_token()
    status, info = daemon.request("GET", "/api/v1/info")
    assert "process" in info["targets"] and info["default_target"] == "process"
    repo = make_repo(tmp_path / "app", {"app.py": APP})
    body = {"name": "web", "source": "local", "path": str(repo), "runtime": "python"}

    # A first release: built into a release dir, run on a fresh loopback port.
    first = deploy_live(daemon, token, body)
    assert first["target"] == "process" and first["version"] is None
    assert first["artifact"] == str(daemon.data_dir / "releases" / first["service_id"] / "1")
    assert page(first["host_port"]) == "v1\n"
    service_path = f"/api/v1/services/{first['service_id']}"
    status, state = daemon.request("GET", f"{service_path}/status", token=token)
    assert state["status"] == "running" and state["restarts"] == 0, state
    assert state["container_id"].startswith("proc-web-1-")

    # Blue/green: v2 starts beside v1, passes its check, takes over; v1 stops.
    commit(repo, {"app.py": APP.replace('"v1\\n"', '"v2\\n"')}, "v2")
    second = deploy_live(daemon, token, body)
    assert second["host_port"] != first["host_port"]
    assert page(second["host_port"]) == "v2\n"
    wait_for(lambda: not answers(first["host_port"]), "v1 stopped after the switch")
    assert len(app_processes(daemon.data_dir)) >= 1

    # Rollback: v1's release dir again, nothing built.
    status, rollback = daemon.request(
        "POST", f"/api/v1/deployments/{first['id']}/rollback", token=token
    )
    assert status == 202, rollback
    rolled = wait_status(daemon, token, rollback["id"], {"live", "failed"})
    assert rolled["status"] == "live", rolled
    assert {s["name"]: s["status"] for s in rolled["stages"]}["building"] == "skipped"
    assert rolled["artifact"] == first["artifact"]
    assert page(rolled["host_port"]) == "v1\n"

    # Logs: the app's own lines, by tail, then followed as new ones come.
    status, logs = daemon.request("GET", f"{service_path}/logs?tail=5", token=token)
    assert status == 200 and logs["logs"][0]["message"].startswith("starting v1"), logs
    assert logs["logs"][0]["stream"] == "stdout"
    follow = urllib.request.Request(
        f"{daemon.url}{service_path}/logs?tail=0&follow=true",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(follow, timeout=30) as stream:
        os.kill(_app_pid(daemon, token, service_path), signal.SIGKILL)  # a crash: it restarts
        said = [json.loads(stream.readline())["message"] for _ in range(3)]
        # sh (the keeper) says how its child ended, then dployr, then the app again.
        assert said[:2] == ["Killed", "dployr: the app exited (exit code 137); restarting"], said
        assert said[2].startswith("starting v1"), said

    # Status counts the restart, and the app serves again on the same port.
    status, state = daemon.request("GET", f"{service_path}/status", token=token)
    assert state["restarts"] == 1, state
    wait_for(lambda: answers(rolled["host_port"]), "the app came back after its crash")

    # kill -9 of the daemon: its apps stop with it ...
    assert app_processes(daemon.data_dir)
    daemon.stop(signal.SIGKILL)
    wait_for(lambda: not app_processes(daemon.data_dir), "no app outlives the daemon", 20)
    assert not answers(rolled["host_port"])
    # ... and the next start brings the live release back, with nothing left of the old run.
    daemon.start()
    token = daemon.admin_token()
    status, service = daemon.request("GET", service_path, token=token)
    assert service["status"] == "running" and service["current_deployment_id"] == rollback["id"]
    assert page(service["host_port"]) == "v1\n"
    records = list((daemon.data_dir / "run" / "process").glob("*.json"))
    assert [r.stem for r in records] == [service["container_id"]]

    # SIGTERM: the daemon stops its apps on the way out, and exits 0.
    assert daemon.stop(signal.SIGTERM, timeout=30) == 0
    assert not app_processes(daemon.data_dir)


def _app_pid(daemon: Daemon, token: str, service_path: str) -> int:
    """The app's own pid, from the line it printed at start."""
    _, logs = daemon.request("GET", f"{service_path}/logs?tail=100", token=token)
    starts = [line["message"] for line in logs["logs"] if line["message"].startswith("starting")]
    return int(starts[-1].split()[-1])
