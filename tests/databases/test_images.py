"""The stand-in engine images' entrypoints (scripts/images/) are shellcheck-clean."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[2] / "scripts" / "images"


def test_the_entrypoints_are_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is missing (scripts/provision installs it)")
        pytest.skip("shellcheck is missing")
    scripts = sorted(str(path) for path in IMAGES.glob("*/docker-entrypoint.sh"))
    assert len(scripts) == 3
    done = subprocess.run(
        ["shellcheck", "--severity=style", *scripts],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout
