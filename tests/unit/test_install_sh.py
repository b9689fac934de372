"""install.sh without a host to install on: shellcheck, safe when cut short, flags, live-restore.

The end-to-end runs (curl | sh in a real systemd box) are in tests/box/test_install.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

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
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is missing (scripts/provision installs it)")
        pytest.skip("shellcheck is missing")
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


def _live_restore(tmp_path: Path, *, swarm: str = "0", engine_state: str = "inactive") -> str:
    """setup_live_restore with the daemon.json in tmp_path and docker/systemctl stubbed."""
    body = "".join(SCRIPT.read_text().splitlines(keepends=True)[:-1])
    harness = tmp_path / "harness.sh"
    harness.write_text(
        body
        + f"""
DOCKER_DAEMON_JSON={tmp_path}/docker/daemon.json
SWARM={swarm}
docker() {{ echo {engine_state}; }}
systemctl() {{ echo "systemctl $*" >>{tmp_path}/calls; }}
setup_live_restore
"""
    )
    done = _sh(script=harness)
    return done.stdout + done.stderr + f" (exit {done.returncode})"


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
