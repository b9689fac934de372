"""`dployr --help` and a client command load no daemon library (its start-up time: bench/cli.py)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("aiohttp", "aiosqlite", "docker", "git", "jinja2", "rich", "psutil", "apscheduler")


def _loaded(*argv: str) -> set[str]:
    script = (
        "import sys\nfrom dployr.cli import main\n"
        f"try:\n    main({list(argv)!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    return set(eval(done.stderr.strip().splitlines()[-1]))  # noqa: S307 (our own repr)


def test_help_imports_no_daemon_library() -> None:
    assert _loaded("--help") == set()
    assert _loaded("services", "ls", "--help") == set()


def test_a_client_command_without_a_daemon_imports_none_either() -> None:
    assert _loaded("whoami", "--url", "http://127.0.0.1:1", "--token", "x") == set()
