"""kill -9 of a real `dployr serve` in the middle of an upload: the half-received archive is
gone after the restart (nothing that grows forever), and the next upload goes live."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import signal
import tarfile
import time
from pathlib import Path

from tests.integration.conftest import Daemon, page, wait_status

BOUNDARY = "dployr-test-boundary"
APP = {"name": "web", "runtime": "static", "target": "docker"}


def _site() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = b"hello from an upload\n"
        info = tarfile.TarInfo("index.html")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def _head(deployment: dict[str, str]) -> bytes:
    return (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="deployment"\r\n'
        "Content-Type: application/json\r\n\r\n"
        f"{json.dumps(deployment)}\r\n"
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="archive"; filename="site.tar.gz"\r\n'
        "Content-Type: application/gzip\r\n\r\n"
    ).encode()


def _begin(daemon: Daemon, token: str, length: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    conn.putrequest("POST", "/api/v1/deployments/upload")
    conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    conn.putheader("Content-Length", str(length))
    conn.endheaders()
    return conn


def _incoming(data_dir: Path) -> list[tuple[Path, int]]:
    found = (data_dir / "uploads" / ".incoming").glob("*.part")
    return [(path, path.stat().st_size) for path in found]


def test_kill_9_mid_upload_leaves_nothing_after_the_restart(
    deploy_daemon: Daemon, tmp_path: Path
) -> None:
    daemon = deploy_daemon
    daemon.start()
    token = daemon.admin_token()
    head = _head(APP)
    conn = _begin(daemon, token, len(head) + 8 * 1024 * 1024)  # 8 MiB promised
    conn.send(head)
    conn.send(b"\x1f\x8b" + b"\0" * (3 * 1024 * 1024))  # 3 MiB of it sent, then no more
    deadline = time.monotonic() + 30
    while not any(size >= 1024 * 1024 for _, size in _incoming(daemon.data_dir)):
        assert time.monotonic() < deadline, "the upload never reached the disk"
        time.sleep(0.05)

    daemon.stop(signal.SIGKILL)
    conn.close()
    assert len(_incoming(daemon.data_dir)) == 1  # what the kill left

    daemon.start()
    assert _incoming(daemon.data_dir) == []
    assert not (daemon.data_dir / "uploads" / ".incoming").exists()
    status, deployments = daemon.request("GET", "/api/v1/deployments", token=token)
    assert status == 200 and deployments["total"] == 0, deployments

    # The daemon is fine: the next upload is accepted and goes live.
    archive = _site()
    body = head + archive + f"\r\n--{BOUNDARY}--\r\n".encode()
    conn = _begin(daemon, token, len(body))
    conn.send(body)
    resp = conn.getresponse()
    created = json.loads(resp.read())
    conn.close()
    assert resp.status == 202, created
    live = wait_status(daemon, token, created["id"], {"live", "failed"})
    assert live["status"] == "live", live
    assert page(live["host_port"]) == "hello from an upload\n"
    kept = daemon.data_dir / "uploads" / live["service_id"] / f"{live['id']}.tar.gz"
    assert kept.read_bytes() == archive
