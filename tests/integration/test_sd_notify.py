"""Type=notify: a real `dployr serve` says READY=1 on $NOTIFY_SOCKET once its port accepts."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import daemon_env, dployr_command, free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_is_sent_once_the_api_listens(
    tmp_path: Path, empty_config: Path, abstract: bool
) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:  # systemd hands "@name" for an abstract socket
        name = f"dployr-test-{tmp_path.name}"
        listener.bind("\0" + name)
        address = "@" + name
    else:
        address = str(tmp_path / "notify")
        listener.bind(address)
    listener.settimeout(60)
    port = free_port()
    env = daemon_env(tmp_path / "data", NOTIFY_SOCKET=address)
    log = (tmp_path / "daemon.log").open("wb")
    process = subprocess.Popen(
        dployr_command("serve", "--config", str(empty_config), "--port", str(port)),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        try:
            message = listener.recv(4096).decode()
        except TimeoutError:
            pytest.fail(f"no READY=1 in 60 s:\n{(tmp_path / 'daemon.log').read_text()}")
        assert message.splitlines()[0] == "READY=1"
        assert f"127.0.0.1:{port}" in message  # STATUS= names where it listens
        # At the moment it says so, the API answers.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            assert resp.status == 200
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        listener.close()


def test_without_a_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    from dployr.sd_notify import notify

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify")
    assert notify("READY=1") is False
