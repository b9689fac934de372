"""systemd/dployr.service: `systemd-analyze verify` finds nothing, and it keeps its promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "dployr.service"
EXEC = "/opt/dployr/bin/dployr"


def _verify(unit: Path) -> str:
    """What `systemd-analyze verify` says about the unit: empty when it finds nothing."""
    require_tool("systemd-analyze", "scripts/provision installs systemd")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (done.stdout + done.stderr).strip() + ("" if done.returncode == 0 else " (failed)")


def _copy(tmp_path: Path, text: str, name: str = "dployr.service") -> Path:
    """The unit with ExecStart pointing at a program that exists here (verify checks it)."""
    path = tmp_path / name
    path.write_text(text.replace(EXEC, str(Path(sys.executable).parent / "dployr")))
    return path


def _settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_verifies_clean(tmp_path: Path) -> None:
    assert _verify(_copy(tmp_path, UNIT.read_text())) == ""
    # The check is not blind: a misspelt key and a bad value are reported.
    broken = UNIT.read_text().replace("KillMode=mixed", "KillMode=mixd\nProtectSytem=true")
    said = _verify(_copy(tmp_path, broken, "broken.service"))
    assert "mixd" in said
    assert "ProtectSytem" in said


def test_the_unit_runs_the_installed_daemon_and_keeps_apps_out_of_its_cgroup() -> None:
    settings = _settings(UNIT.read_text())
    assert settings["ExecStart"] == [f"{EXEC} serve --config /etc/dployr/config.toml"]
    assert settings["Restart"] == ["on-failure"]
    assert settings["Type"] == ["notify"]  # `dployr serve` sends READY=1 (dployr/sd_notify.py)
    assert settings["NotifyAccess"] == ["main"]
    assert settings["StateDirectory"] == ["dployr"]
    assert settings["ConfigurationDirectory"] == ["dployr"]
    # Apps are not its children: a stop signals the daemon alone first, never every process
    # of the group at once (control-group would).
    assert settings["KillMode"] in (["mixed"], ["process"])
    # What would cut it off from Docker or systemd is not there.
    assert settings.get("ProtectSystem", ["false"]) in (["false"], ["true"])
    for key in ("PrivateDevices", "PrivateNetwork", "DynamicUser", "User"):
        assert key not in settings, key
    assert settings["WantedBy"] == ["multi-user.target"]
