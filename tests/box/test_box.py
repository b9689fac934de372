"""The box itself: systemd is PID 1, a reboot keeps the disk, it reaches the host's loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.box.vps import Box, serve_directory

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
def test_systemd_boots_and_a_reboot_keeps_the_disk(box: Box, tmp_path: Path) -> None:
    assert box.exec("cat", "/proc/1/comm").stdout.strip() == "systemd"
    assert box.exec("systemctl", "is-active", "dbus.socket").stdout.strip() == "active"
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "hello.txt").write_text("from the host\n")
    with serve_directory(tmp_path / "www") as url:
        # The box shares the host's loopback: a server the test runs there answers inside.
        got = box.exec("curl", "-fsS", f"{url}/hello.txt").stdout
    assert got == "from the host\n"
    box.copy_in(tmp_path / "www" / "hello.txt", "/root/hello.txt")
    box.sh("echo volatile > /run/volatile")
    assert box.restart() in ("running", "degraded")
    assert box.exec("cat", "/root/hello.txt").stdout == "from the host\n"
    assert box.exec("test", "-e", "/run/volatile", check=False).returncode == 1
