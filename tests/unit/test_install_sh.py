"""install.sh without a host to install on: shellcheck, safe when cut short, flags, live-restore.

The end-to-end runs (curl | sh in a real systemd box) are in tests/box/test_install.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "install.sh"


def _sh(*args: str, script: Path = SCRIPT, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )


def test_shellcheck_finds_nothing() -> None:
    require_tool("shellcheck", "scripts/provision installs it")
    done = subprocess.run(
        ["shellcheck", "--shell=sh", "--severity=style", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    assert SCRIPT.read_text().startswith("#!/bin/sh\n")


def test_a_download_cut_short_runs_nothing(tmp_path: Path) -> None:
    """Only function definitions until the last line calls main: a script cut at any line
    (curl | sh with a dropped connection) defines things and exits, or fails to parse."""
    lines = SCRIPT.read_text().splitlines(keepends=True)
    assert lines[-1] == 'main "$@"\n'
    cut = tmp_path / "cut.sh"
    for end in range(len(lines) - 1):
        cut.write_text("".join(lines[:end]))
        done = _sh("--help", script=cut)
        assert "Usage" not in done.stdout, f"cut after line {end} ran main"
        assert "==>" not in done.stdout, f"cut after line {end} did something"
    assert "Usage: install.sh" in _sh("--help").stdout


def test_flags() -> None:
    usage = _sh("--help")
    assert usage.returncode == 0
    for flag in ("--source", "--port", "--no-docker", "--no-caddy", "--swarm", "--uninstall"):
        assert flag in usage.stdout
    assert "--purge" in usage.stdout
    unknown = _sh("--frobnicate")
    assert unknown.returncode == 1
    assert "unknown option: --frobnicate" in unknown.stderr
    for bad in ("0", "65536", "80x", ""):
        done = _sh("--port", bad)
        assert done.returncode == 1
        assert "--port must be" in done.stderr
    assert "--source needs a value" in _sh("--source").stderr
    # No default source: the PyPI name `dployr` is another project's.
    assert "--source is required" in _sh("--no-caddy").stderr
    assert "--source is required" in _sh("--source=").stderr


def _harness(tmp_path: Path, lines: str) -> str:
    """install.sh's functions (all but its last line), then `lines`: what it printed, and how
    it exited. Stubs are shell functions defined in `lines`."""
    body = "".join(SCRIPT.read_text().splitlines(keepends=True)[:-1])
    harness = tmp_path / "harness.sh"
    harness.write_text(body + "\n" + lines + "\n")
    done = _sh(script=harness)
    return done.stdout + done.stderr + f" (exit {done.returncode})"


def _live_restore(tmp_path: Path, *, swarm: str = "0", engine_state: str = "inactive") -> str:
    """setup_live_restore with the daemon.json in tmp_path and docker/systemctl stubbed."""
    return _harness(
        tmp_path,
        f"""
DOCKER_DAEMON_JSON={tmp_path}/docker/daemon.json
SWARM={swarm}
docker() {{ echo {engine_state}; }}
systemctl() {{ echo "systemctl $*" >>{tmp_path}/calls; }}
setup_live_restore""",
    )


@pytest.mark.parametrize(
    ("os_release", "fits"),
    [
        ('ID=debian\nVERSION_ID="12"\n', True),
        ("ID=ubuntu\nID_LIKE=debian\n", True),
        ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', True),
        ('ID=fedora\nID_LIKE="rhel centos"\n', False),
        ("ID=debianish\n", False),
    ],
)
def test_only_debian_and_ubuntu_hosts_with_systemd(
    tmp_path: Path, os_release: str, fits: bool
) -> None:
    (tmp_path / "os-release").write_text(os_release)
    (tmp_path / "systemd").mkdir()
    check = f"OS_RELEASE={tmp_path}/os-release\nSYSTEMD_RUNTIME={tmp_path}/systemd\n"
    said = _harness(tmp_path, check + "id() { echo 0; }\ncheck_host && echo fits")
    if fits:
        assert said.endswith("fits\n (exit 0)"), said
    else:
        assert "supports Debian and Ubuntu" in said
        assert "(exit 1)" in said
    no_systemd = f"OS_RELEASE={tmp_path}/os-release\nSYSTEMD_RUNTIME={tmp_path}/none\n"
    if fits:
        said = _harness(tmp_path, no_systemd + "id() { echo 0; }\ncheck_host")
        assert "systemd is not running here" in said
    said = _harness(tmp_path, check + "id() { echo 1000; }\ncheck_host")
    assert "run me as root" in said
    assert "(exit 1)" in said


@pytest.mark.parametrize(
    ("flags", "installed", "expected"),
    [
        ("", "", ["python3 python3-venv git curl ca-certificates", "docker.io", "LR", "caddy"]),
        ("", "dockerd caddy", ["python3 python3-venv git curl ca-certificates", "LR"]),
        ("--no-docker --no-caddy", "", ["python3 python3-venv git curl ca-certificates"]),
        ("--no-caddy", "", ["python3 python3-venv git curl ca-certificates", "docker.io", "LR"]),
    ],
)
def test_what_is_installed_from_the_distribution(
    tmp_path: Path, flags: str, installed: str, expected: list[str]
) -> None:
    """Docker (then live-restore) and Caddy unless a flag says no or they are already there."""
    said = _harness(
        tmp_path,
        f"""
parse_args --source x {flags}
have() {{ case " {installed} " in *" $1 "*) return 0 ;; esac; return 1; }}
apt_install() {{ echo "apt $*"; }}
setup_live_restore() {{ echo "apt LR"; }}
install_packages""",
    )
    assert [line[4:] for line in said.splitlines() if line.startswith("apt ")] == expected


@pytest.mark.parametrize(
    ("installed", "backend"), [("caddy nginx", "caddy"), ("nginx", "nginx"), ("", "none")]
)
def test_the_proxy_written_in_the_config_is_the_one_installed(
    tmp_path: Path, installed: str, backend: str
) -> None:
    said = _harness(
        tmp_path,
        f"""have() {{ case " {installed} " in *" $1 "*) return 0 ;; esac; return 1; }}
proxy_backend""",
    )
    assert said == f"{backend}\n (exit 0)"


def test_live_restore_is_merged_into_daemon_json(tmp_path: Path) -> None:
    settings = tmp_path / "docker" / "daemon.json"
    said = _live_restore(tmp_path)
    assert "(exit 0)" in said
    assert json.loads(settings.read_text()) == {"live-restore": True}
    # The operator's own settings stay; a second run changes nothing.
    settings.write_text('{"log-driver": "journald", "live-restore": false}')
    _live_restore(tmp_path)
    assert json.loads(settings.read_text()) == {"log-driver": "journald", "live-restore": True}
    before = settings.stat().st_mtime_ns
    assert "turned on" not in _live_restore(tmp_path)
    assert settings.stat().st_mtime_ns == before
    assert "systemctl reload docker" in (tmp_path / "calls").read_text()


def test_live_restore_stays_off_for_a_swarm_and_bad_json_is_not_clobbered(tmp_path: Path) -> None:
    settings = tmp_path / "docker" / "daemon.json"
    settings.parent.mkdir()
    settings.write_text('{"log-driver": "journald"}')
    assert "live-restore stays off" in _live_restore(tmp_path, swarm="1")
    assert "swarm" in _live_restore(tmp_path, engine_state="active")
    assert json.loads(settings.read_text()) == {"log-driver": "journald"}
    settings.write_text('{"log-driver": ')
    said = _live_restore(tmp_path)
    assert "(exit 1)" in said
    assert "not valid JSON" in said
    assert settings.read_text() == '{"log-driver": '
