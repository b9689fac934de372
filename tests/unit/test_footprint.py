"""Importing the daemon leaves out what only work needs (tests/docker/test_footprint.py runs
a real daemon against the engine; this one needs no engine)."""

from __future__ import annotations

import subprocess
import sys

# Imported by the first deploy, build or engine change, never by an idle daemon or the API.
DEFERRED = frozenset({"docker", "requests", "urllib3", "git", "gitdb", "jinja2"})
# Imported (in threads) by the first login, token check or request body.
FIRST_REQUEST = frozenset({"jwt", "cryptography", "jsonschema"})


def test_importing_the_daemon_leaves_heavy_libraries_out() -> None:
    script = (
        "import sys, dployr.app, dployr.cli; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert "aiohttp" in out
    assert not set(out) & (DEFERRED | FIRST_REQUEST), sorted(set(out) & (DEFERRED | FIRST_REQUEST))
