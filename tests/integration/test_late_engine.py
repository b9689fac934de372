"""An engine that is down when the daemon starts: queued work waits for it, can still be
cancelled, and resumes as soon as the engine answers (not at the next restart)."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from pathlib import Path

from tests.docker.conftest import STATIC_APP, cleanup_agent, make_repo
from tests.integration.conftest import Daemon, daemon_env, page, wait_status

ENGINE = "/var/run/docker.sock"


class EngineRelay:
    """A unix socket that relays to the Docker engine's own while it is open: closing it is
    an engine that went away, opening it again one that came back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []

    def open(self) -> None:
        self.path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()
        self._conns.clear()
        self.path.unlink(missing_ok=True)

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(ENGINE)
            self._conns += [client, engine]
            for a, b in ((client, engine), (engine, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def test_queued_work_waits_for_a_late_engine_and_can_be_cancelled_meanwhile(
    tmp_path: Path, empty_config: Path
) -> None:
    relay = EngineRelay(tmp_path / "engine.sock")
    relay.open()
    data_dir = tmp_path / "data"
    env = daemon_env(
        data_dir,
        DPLOYR_RUNTIME_ALLOW_LOCAL_SOURCES="true",
        DPLOYR_RUNTIME_DRAIN_SECONDS="0.2",
        DPLOYR_RUNTIME_DOCKER_HOST=f"unix://{relay.path}",
    )
    daemon = Daemon(data_dir, empty_config, env)
    try:
        daemon.start()
        token = daemon.admin_token()
        repo = make_repo(tmp_path / "app", STATIC_APP)
        body = {"name": "web", "source": "local", "path": str(repo), "runtime": "static"}
        slow = {**body, "build_cmd": "echo slow build; sleep 60"}
        status, running = daemon.request("POST", "/api/v1/deployments", slow, token=token)
        assert status == 202, running
        queued = []
        for _ in range(2):
            status, created = daemon.request("POST", "/api/v1/deployments", body, token=token)
            assert status == 202, created
            queued.append(created)
        wait_status(daemon, token, running["id"], {"building"})
        assert daemon.stop(signal.SIGTERM, timeout=20) == 0

        relay.close()  # the engine is down when the daemon starts again
        daemon.start()
        token = daemon.admin_token()
        time.sleep(3)  # more than one engine poll: nothing may have moved
        for created in queued:
            status, now = daemon.request("GET", f"/api/v1/deployments/{created['id']}", token=token)
            assert now["status"] == "queued", now

        # A queued deployment is cancelled without the engine.
        status, answer = daemon.request(
            "DELETE", f"/api/v1/deployments/{queued[0]['id']}", token=token
        )
        assert status == 204, answer
        wait_status(daemon, token, queued[0]["id"], {"cancelled"}, limit=5)

        relay.open()  # the engine comes up: the other one runs, with no restart
        resumed = wait_status(daemon, token, queued[1]["id"], {"live", "failed"}, limit=90)
        assert resumed["status"] == "live", resumed
        assert page(resumed["host_port"]) == "hello v1\n"
        failed = wait_status(daemon, token, running["id"], {"failed"}, limit=5)
        assert "interrupted" in failed["error"], failed
    finally:
        daemon.kill()
        relay.close()
        cleanup_agent(data_dir)
