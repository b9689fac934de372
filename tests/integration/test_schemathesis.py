"""schemathesis against the live /api/v1/openapi.json: no 5xx, no response off its schema.

Two runs, each on its own daemon:

- the long one leaves out the three operations by which a fuzzer can end its own session
  (revoking its API token, deleting its user, or promoting another user and then disabling
  itself), and checks at the end that its token still works: a run whose token died half-way
  would test nothing but 401s and still pass;
- a short one runs every operation, the self-destructive ones included.

One worker only: with several, hypothesis describes lambdas with `ast.parse` from two threads
at once, which CPython 3.11 does not survive ("SystemError: AST constructor recursion depth
mismatch"), and schemathesis reports that as an error of whichever operation hit it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.conftest import cleanup_agent
from tests.integration.conftest import Daemon

pytestmark = pytest.mark.integration

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)
SELF_DESTRUCTIVE = [
    "DELETE /api/v1/tokens/{id}",
    "DELETE /api/v1/users/me",
    "PATCH /api/v1/users/{id}",
]


@pytest.fixture(autouse=True)
def _remove_what_it_made(daemon: Daemon) -> Iterator[None]:
    """A fuzzed POST /databases that is valid makes a real database: its container, volume and
    network go with the run's agent."""
    yield
    daemon.kill()
    cleanup_agent(daemon.data_dir)


def api_token(daemon: Daemon) -> str:
    """An API token (not a session), so a fuzzed /auth/logout cannot end the run's own session."""
    status, created = daemon.request(
        "POST", "/api/v1/tokens", {"name": "schemathesis"}, daemon.admin_token()
    )
    assert status == 201, created
    assert created["token"].startswith("dpl_")
    return str(created["token"])


def schemathesis(
    daemon: Daemon, token: str, workdir: Path, max_time: int, *extra: str
) -> tuple[int, str]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{daemon.url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--max-examples",
        "20",
        "--seed",
        "7",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--report-dir",
        str(workdir / "report"),
        "--max-time",
        str(max_time),
        "--request-timeout",
        "10",
        "--no-color",
        *extra,
    ]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"}
    result = subprocess.run(
        command,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=max_time + 90,
        cwd=workdir,  # whatever it writes (.hypothesis, reports) stays out of the repository
        env=env,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def generated(output: str) -> int:
    found = re.search(r"(\d+) generated", output)
    assert found, output[-5000:]
    return int(found.group(1))


@pytest.mark.timeout(240)
def test_schemathesis_finds_no_server_errors(daemon: Daemon, tmp_path: Path) -> None:
    daemon.start()
    token = api_token(daemon)
    excluded = [arg for name in SELF_DESTRUCTIVE for arg in ("--exclude-name", name)]
    code, output = schemathesis(daemon, token, tmp_path, 60, *excluded)
    assert code == 0, output[-20000:]
    operations = re.search(r"(\d+) selected / (\d+) total", output)
    assert operations, output[:3000]
    selected, total = map(int, operations.groups())
    assert selected == total - len(SELF_DESTRUCTIVE), output[:3000]  # each name matched one
    assert generated(output) > 300, output[-5000:]  # it really ran
    # The run kept its session to the end, so it tested more than the auth middleware.
    status, body = daemon.request("GET", "/api/v1/auth/me", token=token)
    assert status == 200, body
    assert daemon.request("GET", "/health")[0] == 200


@pytest.mark.timeout(150)
def test_schemathesis_with_self_destructive_operations(daemon: Daemon, tmp_path: Path) -> None:
    daemon.start()
    code, output = schemathesis(daemon, api_token(daemon), tmp_path, 25)
    assert code == 0, output[-20000:]
    assert generated(output) > 100, output[-5000:]
    assert daemon.request("GET", "/health")[0] == 200
