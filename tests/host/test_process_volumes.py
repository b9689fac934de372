"""Volumes on the process target (SPEC §14): a directory under <data_dir>/volumes whose path
the app gets in DPLOYR_VOLUME_<NAME>; its data outlives a redeploy, DELETE removes it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from dployr.app import create_app
from tests.conftest import login, make_config, register
from tests.docker.conftest import commit, fetch_text, make_repo, wait_done

# Each GET appends the release's name to a file in the volume, and answers the file and where
# the volume is.
APP = """\
import http.server, os

VERSION = "v1"
VOLUME = os.environ["DPLOYR_VOLUME_UP_LOADS"]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/hit":
            with open(os.path.join(VOLUME, "hits"), "a") as hits:
                hits.write(VERSION + "\\n")
        with open(os.path.join(VOLUME, "hits"), "a+") as hits:
            hits.seek(0)
            body = (VOLUME + "\\n" + hits.read()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


async def deploy(client: TestClient, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:  # type: ignore[type-arg]
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    return await wait_done(client, auth, (await resp.json())["id"])


async def test_a_process_app_finds_its_volume_in_the_env_and_keeps_its_data(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    config = make_config(
        data_dir,
        runtime={"default_target": "process", "allow_local_sources": True,
                 "drain_seconds": 0.2},
    )  # fmt: skip
    client = await aiohttp_client(create_app(config))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", {"app.py": APP})
    body = {"name": "notes", "source": "local", "path": str(repo), "runtime": "python",
            "target": "process", "health_check": {"path": "/", "timeout": 30},
            "volumes": [{"name": "up-loads", "path": "/srv/uploads"}]}  # fmt: skip

    first = await deploy(client, auth, body)
    assert first["status"] == "live", first["error"]
    sid = first["service_id"]
    volume = data_dir / "volumes" / sid / "up-loads"
    assert await fetch_text(first["host_port"], "/hit") == (200, f"{volume}\nv1\n")

    await asyncio.to_thread(commit, repo, {"app.py": APP.replace('"v1"', '"v2"')}, "v2")
    second = await deploy(client, auth, {k: v for k, v in body.items() if k != "volumes"})
    assert second["status"] == "live", second["error"]
    assert await fetch_text(second["host_port"], "/hit") == (200, f"{volume}\nv1\nv2\n")

    listed = await (await client.get(f"/api/v1/services/{sid}/volumes", headers=auth)).json()
    assert [(v["name"], v["path"], v["size_bytes"]) for v in listed["items"]] == [
        ("up-loads", "/srv/uploads", len("v1\nv2\n"))
    ]
    resp = await client.delete(f"/api/v1/services/{sid}", headers=auth)
    assert resp.status == 204, await resp.text()
    assert not await asyncio.to_thread(volume.exists)
    assert not await asyncio.to_thread((data_dir / "volumes" / sid).exists)
