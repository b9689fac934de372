"""Clients generated from the live OpenAPI document: a Python one (openapi-python-client) and a
TypeScript one (openapi-typescript), each without a warning, and a real session through the
Python one. The generators live in a cache of their own (scripts/codegen-tools)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.docker.conftest import cleanup_agent
from tests.integration.conftest import PASSWORD, Daemon, daemon_env, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CALL = Path(__file__).with_name("generated_client_call.py")


def run(
    command: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def tools() -> Path:
    """The generators' directory; the first run installs them (about a minute), later ones
    find them cached."""
    require_tool("npm", "Node.js and npm come with the machine")
    result = run([str(ROOT / "scripts" / "codegen-tools")], timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    return Path(result.stdout.strip())


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the module. Private remotes are allowed, so that a remote on a closed
    loopback port fails its deployment at once, before anything is built."""
    root = tmp_path_factory.mktemp("clients")
    config = root / "etc" / "config.toml"
    config.parent.mkdir()
    config.write_text("# every key at its default\n")
    data_dir = root / "data"
    env = daemon_env(data_dir, DPLOYR_RUNTIME_ALLOW_PRIVATE_REMOTES="true")
    process = Daemon(data_dir, config, env)
    process.start()
    try:
        yield process
    finally:
        process.kill()
        cleanup_agent(data_dir)


@pytest.fixture(scope="module")
def document(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Path:
    status, doc = daemon.request("GET", "/api/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1"), doc
    path = tmp_path_factory.mktemp("document") / "openapi.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def python_client(tools: Path, document: Path) -> Path:
    """The generated package's parent directory. The generator prints one line when all is
    well; anything more is a warning (a schema it could not read, a response it left out)."""
    out = document.parent / "python"
    env = {**os.environ, "PATH": f"{tools / 'venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    generate = tools / "venv" / "bin" / "openapi-python-client"
    result = run(
        [str(generate), "generate", "--path", str(document), "--output-path", str(out)],
        timeout=120,
        env=env,  # its ruff post-hook formats the client
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    assert output.splitlines() == [f"Generating {out}"], output
    return out


@pytest.mark.timeout(900)  # the first run installs the generators
def test_the_python_client_has_every_model_and_response(python_client: Path) -> None:
    package = python_client / "dployr_client"
    models = {path.stem for path in (package / "models").glob("*.py")}
    assert {"service", "service_page", "service_status", "deployment", "deployment_page"} <= models
    assert {"error", "route", "webhook", "delivery", "database", "backup", "volume"} <= models
    # No response was left out: a dropped one parses as None.
    services = (package / "api" / "services" / "get_api_v1_services.py").read_text()
    assert "ServicePage.from_dict(" in services
    one = (package / "api" / "services" / "get_api_v1_services_id.py").read_text()
    assert "Service.from_dict(" in one


@pytest.mark.timeout(900)
def test_the_typescript_client_generates_and_compiles(tools: Path, document: Path) -> None:
    out = document.parent / "typescript"
    out.mkdir()
    bin_dir = tools / "npm" / "node_modules" / ".bin"
    result = run(
        [str(bin_dir / "openapi-typescript"), str(document), "-o", str(out / "dployr.d.ts")],
        timeout=120,
    )
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 0, lines
    # "✨ openapi-typescript 7.13.0" and "🚀 openapi.json → dployr.d.ts [226ms]"; warnings
    # (from its Redocly lint) and errors add lines.
    assert len(lines) == 2 and re.search(r"→ .*dployr\.d\.ts \[", lines[1]), lines
    # The named schemas are types a program can use, and the whole file type-checks.
    (out / "check.ts").write_text(
        'import type { components, paths } from "./dployr";\n'
        'type Schemas = components["schemas"];\n'
        'const status: Schemas["ServiceStatus"] = "running";\n'
        'type Listed = paths["/api/v1/services"]["get"]["responses"][200][\'content\'];\n'
        'const page: Listed["application/json"] = '
        "{ items: [], page: 1, per_page: 20, total: 0, total_pages: 0 };\n"
        'const service: Schemas["Service"] | undefined = page.items[0];\n'
        "export { status, service };\n"
    )
    options = [
        "--noEmit",
        "--strict",
        "--target",
        "es2020",
        "--module",
        "es2020",
        "--lib",
        "es2020",
    ]
    result = run([str(bin_dir / "tsc"), *options, str(out / "check.ts")], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(900)
def test_a_real_session_through_the_generated_python_client(
    tools: Path, python_client: Path, daemon: Daemon
) -> None:
    refused = f"http://127.0.0.1:{free_port()}/app.git"  # nothing listens there
    result = run(
        [str(tools / "venv" / "bin" / "python"), str(CALL), daemon.url, refused, PASSWORD],
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(python_client)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    session = json.loads(result.stdout)
    assert session["user"] == {"email": "client@example.com", "role": "admin"}
    assert session["token_type"] == "bearer" and session["wrong_password"]
    assert session["deployment"]["status"] == "failed"
    assert session["deployment"]["first_stage"] == "failed"
    assert session["total"] == 1
    [service] = session["services"]
    assert service["name"] == "web" and service["desired_state"] == "running"
    assert service["status"] in ("stopped", "unknown", "crashed")
    login = {"email": "client@example.com", "password": PASSWORD}
    pair = daemon.request("POST", "/api/v1/auth/login", login)[1]
    status, listed = daemon.request("GET", "/api/v1/services", token=pair["access_token"])
    assert [s["id"] for s in listed["items"]] == [service["id"]], (status, listed)
