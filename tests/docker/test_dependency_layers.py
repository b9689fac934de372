"""The dependency layer for real: after a one-line code change, the redeploy takes the installed
dependencies from the engine's build cache (python from PyPI, nodejs from npm); requirements
that need the code install after it; a project with no manifest builds."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.docker.conftest import commit, make_repo
from tests.docker.test_runtimes import NODE_PACKAGE, deploy_and_fetch

PY_APP = """\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import six

TEXT = "{text}"


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{{TEXT}} with six {{six.__version__}}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Hello).serve_forever()
"""
NODE_APP = """\
const http = require("http");
const isNumber = require("is-number");
const TEXT = "{text}";
http.createServer((req, res) => res.end(`${{TEXT}} says ${{isNumber(5)}}\\n`))
  .listen(Number(process.env.PORT));
"""


def steps(log: str) -> list[tuple[str, bool]]:
    """(instruction, taken from the cache) per `Step i/n : …` of the legacy builder's output."""
    found: list[tuple[str, bool]] = []
    for line in log.splitlines():
        text = line.strip()
        if text.startswith("Step ") and " : " in text:
            found.append((text.split(" : ", 1)[1], False))
        elif text == "---> Using cache" and found:
            found[-1] = (found[-1][0], True)
    return found


def layers(log: str) -> dict[str, bool]:
    """Whether the manifests' COPY, the install step and the code's COPY came from the cache."""
    found = steps(log)
    at = [i for i, (text, _) in enumerate(found) if text.startswith("COPY .dployr.Dockerfil")]
    assert len(at) == 1, f"no manifests' COPY step in {found}"
    at = at[0]
    assert found[at + 2][0] == "COPY . /app", found
    return {"manifests": found[at][1], "install": found[at + 1][1], "code": found[at + 2][1]}


def body_for(name: str, repo: Path, runtime: str, version: str, port: int) -> dict[str, Any]:
    return {"name": name, "source": "local", "path": str(repo), "branch": "main",
            "runtime": runtime, "version": version, "port": port,
            "health_check": {"path": "/", "timeout": 60}}  # fmt: skip


@pytest.mark.timeout(600)
async def test_python_code_change_reuses_the_installed_requirements(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    # The nonce in the manifest makes the first install run, whatever the engine has cached.
    files = {"app.py": PY_APP.format(text="first"),
             "requirements.txt": f"# run {uuid.uuid4().hex}\nsix==1.16.0\n"}  # fmt: skip
    repo = await asyncio.to_thread(make_repo, tmp_path / "py", files)
    body = body_for("py-layers", repo, "python", "3.11", 8000)
    _, page, log = await deploy_and_fetch(dclient, auth, body)
    assert page == "first with six 1.16.0\n"
    assert layers(log) == {"manifests": False, "install": False, "code": False}, steps(log)
    assert "Successfully installed six-1.16.0" in log, log[-3000:]

    await asyncio.to_thread(commit, repo, {"app.py": PY_APP.format(text="second")}, "one line")
    _, page, log = await deploy_and_fetch(dclient, auth, body)
    assert page == "second with six 1.16.0\n"
    assert layers(log) == {"manifests": True, "install": True, "code": False}, steps(log)
    for output in ("Collecting", "Downloading", "Successfully installed", "already satisfied"):
        assert output not in log, log[-3000:]


@pytest.mark.timeout(600)
async def test_nodejs_code_change_reuses_node_modules(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    package = json.dumps({**NODE_PACKAGE, "description": f"run {uuid.uuid4().hex}"})
    files = {"server.js": NODE_APP.format(text="first"), "package.json": package}
    repo = await asyncio.to_thread(make_repo, tmp_path / "node", files)
    body = body_for("node-layers", repo, "nodejs", "18", 3000)
    _, page, log = await deploy_and_fetch(dclient, auth, body)
    assert page == "first says true\n"
    assert layers(log) == {"manifests": False, "install": False, "code": False}, steps(log)
    assert "added 1 package" in log, log[-3000:]

    await asyncio.to_thread(commit, repo, {"server.js": NODE_APP.format(text="second")}, "edit")
    _, page, log = await deploy_and_fetch(dclient, auth, body)
    assert page == "second says true\n"
    assert layers(log) == {"manifests": True, "install": True, "code": False}, steps(log)
    assert "added 1 package" not in log and "up to date" not in log, log[-3000:]


@pytest.mark.timeout(600)
async def test_requirements_that_need_the_code_install_after_it(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    """requirements.txt includes a file the manifests' layer does not copy (a common Django
    layout): the first install fails there, says so, and runs again once the code is in."""
    files = {"app.py": PY_APP.format(text="nested"),
             "requirements.txt": "-r requirements/base.txt\n",
             "requirements/base.txt": f"# run {uuid.uuid4().hex}\nsix==1.16.0\n"}  # fmt: skip
    repo = await asyncio.to_thread(make_repo, tmp_path / "nested", files)
    body = body_for("py-nested", repo, "python", "3.11", 8000)
    _, page, log = await deploy_and_fetch(dclient, auth, body)
    assert page == "nested with six 1.16.0\n"
    assert "the dependencies need more than their manifests" in log, log[-3000:]
    assert log.index("the dependencies need more") < log.index("Successfully installed six-1.16.0")


@pytest.mark.timeout(600)
async def test_pyproject_dependencies_install_without_a_lock(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    pyproject = (f'[project]\nname = "app"\nversion = "0.1.0"\ndescription = "{uuid.uuid4().hex}"'
                 '\ndependencies = ["six==1.16.0"]\n')  # fmt: skip
    files = {"app.py": PY_APP.format(text="pyproject"), "pyproject.toml": pyproject}
    repo = await asyncio.to_thread(make_repo, tmp_path / "pyproject", files)
    body = body_for("py-project", repo, "python", "3.11", 8000)
    _, page, log = await deploy_and_fetch(dclient, auth, body)
    assert page == "pyproject with six 1.16.0\n"
    assert layers(log)["install"] is False
    assert "Successfully installed six-1.16.0" in log, log[-3000:]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("runtime", ["python", "nodejs"])
async def test_a_project_with_no_manifest_builds(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
    runtime: str,
) -> None:
    """Only the always-present .dployr.Dockerfile matches the manifests' COPY: it still works."""
    if runtime == "python":
        app = PY_APP.replace("import six\n", "").replace("six.__version__", "'none'")
        files, version, port, run_cmd = {"app.py": app.format(text="bare")}, "3.11", 8000, None
    else:
        app = NODE_APP.replace('require("is-number")', "(n) => typeof n === 'number'")
        files, version, port = {"server.js": app.format(text="bare")}, "18", 3000
        run_cmd = "node server.js"
    repo = await asyncio.to_thread(make_repo, tmp_path / runtime, files)
    body = {**body_for(f"bare-{runtime}", repo, runtime, version, port), "run_cmd": run_cmd}
    _, page, log = await deploy_and_fetch(dclient, auth, body)
    assert page == ("bare with six none\n" if runtime == "python" else "bare says true\n")
    assert "COPY .dployr.Dockerfil[e]" in log
