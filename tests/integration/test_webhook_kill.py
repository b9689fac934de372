"""kill -9 of a real `dployr serve` with a delivery pending, and with an event its worker never
read: after the restart both reach the receiver (at-least-once), under the same delivery id."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.conftest import Daemon, daemon_env


class _Receiver(BaseHTTPRequestHandler):
    status = 500
    seen: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(self.headers["webhook-id"])
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    _Receiver.status, _Receiver.seen = 500, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _deliveries(daemon: Daemon, token: str, hook_id: str) -> list[dict[str, object]]:
    status, page = daemon.request("GET", f"/api/v1/webhooks/{hook_id}/deliveries", token=token)
    assert status == 200, page
    return list(page["items"])


def _until(check: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def test_kill_9_loses_no_delivery(
    tmp_path: Path, empty_config: Path, receiver: ThreadingHTTPServer
) -> None:
    data_dir = tmp_path / "data"
    env = daemon_env(
        data_dir, DPLOYR_WEBHOOKS_ALLOW_PRIVATE="true", DPLOYR_WEBHOOKS_RETRY_SCHEDULE="[2]"
    )
    daemon = Daemon(data_dir, empty_config, env)
    try:
        daemon.start()
        token = daemon.admin_token()
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        status, hook = daemon.request("POST", "/api/v1/webhooks", {"url": url}, token=token)
        assert status == 201, hook
        status, ping = daemon.request("POST", f"/api/v1/webhooks/{hook['id']}/ping", token=token)
        assert status == 202, ping
        # The first attempt fails (500): the delivery is pending, its retry not yet due.
        _until(lambda: _deliveries(daemon, token, hook["id"])[0]["attempts"] == 1)
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        # An event committed by a daemon that died before its worker read the log.
        with sqlite3.connect(data_dir / "dployr.db") as db:
            owner = db.execute("SELECT id FROM users").fetchone()[0]
            db.execute(
                "INSERT INTO events (id, type, owner_id, created_at, data) VALUES"
                " ('evt_unread', 'service.crashed', ?, '2026-01-01T00:00:00Z', '{}')",
                (owner,),
            )
        db.close()
        _Receiver.status = 200
        daemon.start()

        def all_delivered() -> bool:
            items = _deliveries(daemon, token, hook["id"])
            return len(items) == 2 and all(d["status"] == "delivered" for d in items)

        _until(all_delivered)
        items = {d["event_type"]: d for d in _deliveries(daemon, token, hook["id"])}
        assert items["ping"]["id"] == ping["id"] and items["ping"]["attempts"] == 2
        assert items["service.crashed"]["event_id"] == "evt_unread"
        assert _Receiver.seen.count(ping["id"]) == 2  # the same webhook-id across the kill
    finally:
        daemon.kill()
