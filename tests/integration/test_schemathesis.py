"""schemathesis against the live /api/v1/openapi.json: no 5xx, no response off its schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


@pytest.mark.timeout(300)
def test_schemathesis_finds_no_server_errors(daemon, tmp_path):
    daemon.start()
    token = daemon.admin_token()
    # An API token, so a fuzzed /auth/logout cannot end the run's own session.
    status, created = daemon.request("POST", "/api/v1/tokens", {"name": "schemathesis"}, token)
    assert status == 201
    schemathesis = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{daemon.url}/api/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {created['token']}",
            "--checks",
            CHECKS,
            "--max-examples",
            "20",
            "--seed",
            "7",
            "--workers",
            "2",
            "--generation-database",
            "none",
            "--report-dir",
            str(tmp_path / "report"),
            "--max-time",
            "75",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=tmp_path,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    cases = re.search(r"(\d+) generated, (\d+) passed\s*$", output, re.MULTILINE)
    assert cases and int(cases.group(1)) > 500, output[-5000:]  # it really ran, all passed
    # The daemon survived the run.
    assert daemon.request("GET", "/health")[0] == 200
