"""The stand-in engine images' entrypoints (scripts/images/) are shellcheck-clean."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_tool

IMAGES = Path(__file__).resolve().parents[2] / "scripts" / "images"


def test_the_entrypoints_are_shellcheck_clean() -> None:
    require_tool("shellcheck", "scripts/provision installs it")
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
