"""`pip wheel` of the checkout installed into a fresh virtualenv: the wheel carries templates
and migrations."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_wheel_installs_into_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    """`wheel`: the checkout's, built once per session (tests/conftest.py)."""
    names = zipfile.ZipFile(wheel).namelist()
    assert "dployr/templates/README.md" in names
    assert "dployr/store/migrations/001_initial.sql" in names
    assert "dployr/systemd/dployr.service" in names  # install.sh takes the unit from here
    # The venv gets no pip of its own (ensurepip alone took ~13 s on a busy CI machine): this
    # pip installs the wheel and its dependencies into it, as `venv/bin/pip install` would.
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        timeout=480,
    )
    version = subprocess.run(
        [str(venv / "bin" / "dployr"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("dployr ")
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n')
    migrated = subprocess.run(
        [str(venv / "bin" / "dployr"), "migrate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "data" / "dployr.db").exists()
