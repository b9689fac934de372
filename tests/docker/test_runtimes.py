"""The catalog's templates for real: a python app installs its requirements from PyPI, a
nodejs app runs `npm install` from the npm registry (base images from scripts/provision).
go and rust render here and build only where their base images exist."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from dployr.config import Config
from dployr.runtime.catalog import CATALOG, base_image, render_dockerfile
from tests.docker.conftest import fetch_text, make_repo, wait_done

PY_APP = """\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import six


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"python with six {six.__version__}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Hello).serve_forever()
"""
NODE_APP = """\
const http = require("http");
const isNumber = require("is-number");
http.createServer((req, res) => res.end(`node says ${isNumber(5)}\\n`))
  .listen(Number(process.env.PORT));
"""
NODE_PACKAGE = """{"name": "app", "version": "1.0.0", "scripts": {"start": "node server.js"},
 "dependencies": {"is-number": "7.0.0"}}
"""


async def deploy_and_fetch(
    client: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    body: dict[str, object],
) -> tuple[dict[str, object], str, str]:
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    done = await wait_done(client, auth, (await resp.json())["id"], limit=360)
    log = await (await client.get(f"/api/v1/deployments/{done['id']}/logs", headers=auth)).json()
    text = "\n".join(line["message"] for line in log["logs"])
    assert done["status"] == "live", (done["error"], text[-3000:])
    service = await (
        await client.get(f"/api/v1/services/{done['service_id']}", headers=auth)
    ).json()
    status, page = await fetch_text(service["host_port"])
    assert status == 200
    return done, page, text


@pytest.mark.timeout(420)
async def test_python_app_installs_from_pypi(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    files = {"app.py": PY_APP, "requirements.txt": "six==1.16.0\n"}
    repo = await asyncio.to_thread(make_repo, tmp_path / "py", files)
    body = {"name": "py-app", "source": "local", "path": str(repo), "runtime": "python",
            "version": "3.11", "port": 8000}  # fmt: skip
    _, page, log = await deploy_and_fetch(dclient, auth, body)
    assert page == "python with six 1.16.0\n"
    assert "six" in log and "Successfully installed" in log


@pytest.mark.timeout(420)
async def test_nodejs_app_installs_from_npm(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    files = {"server.js": NODE_APP, "package.json": NODE_PACKAGE}
    repo = await asyncio.to_thread(make_repo, tmp_path / "node", files)
    body = {"name": "node-app", "source": "local", "path": str(repo), "runtime": "nodejs",
            "version": "18", "port": 3000}  # fmt: skip
    _, page, log = await deploy_and_fetch(dclient, auth, body)
    assert page == "node says true\n"
    assert "added 1 package" in log


@pytest.mark.parametrize("runtime", ["go", "rust", "python", "nodejs", "static"])
def test_templates_render_commands_only_as_json_strings(runtime: str) -> None:
    catalog = CATALOG[runtime]
    image = base_image(Config(), catalog, catalog.default_version or "1")
    hostile = 'make "all"\nRUN touch /pwned'
    text = render_dockerfile(catalog, image, hostile, None)
    lines = text.splitlines()
    assert f"FROM {image}" in lines
    assert not any(line.startswith("RUN touch") for line in lines)
    assert 'RUN ["/bin/sh", "-c", "make \\"all\\"\\nRUN touch /pwned"]' in lines
    assert any(line.startswith('CMD ["/bin/sh", "-c", ') for line in lines)


def _has_image(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


GO_APP = {
    "go.mod": "module app\n\ngo 1.22\n",
    "main.go": 'package main\nimport ("fmt"; "net/http"; "os")\nfunc main() {\n'
    '  http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {\n'
    '    fmt.Fprintln(w, "go")\n  })\n'
    '  http.ListenAndServe(":"+os.Getenv("PORT"), nil)\n}\n',
}


@pytest.mark.timeout(420)
async def test_go_builds_where_its_base_image_exists(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    # The one allowed skip: no registry here, and Debian has no golang:<version> image to
    # build from; the render test above covers the template on every run.
    if not await asyncio.to_thread(_has_image, "golang:1.23"):
        pytest.skip("no golang:1.23 image on this engine (no registry to pull it from)")
    repo = await asyncio.to_thread(make_repo, tmp_path / "go", GO_APP)
    body = {"name": "go-app", "source": "local", "path": str(repo), "runtime": "go", "port": 8080}
    _, page, _ = await deploy_and_fetch(dclient, auth, body)
    assert page == "go\n"
