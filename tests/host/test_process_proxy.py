"""A process-target service behind a real Caddy: redeploy, restart and rollback under load lose
no request (the same switch as the docker target's)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from dployr.app import create_app
from tests.conftest import login, make_config, register
from tests.docker.conftest import commit, make_repo, wait_done
from tests.proxy import load
from tests.proxy.conftest import Caddy, caddy  # noqa: F401 - the fixture too

HOST = "app.localhost"
APP = """\
import http.server, os

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the proxy's upstream connections are

    def do_GET(self):
        body = RELEASE.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

RELEASE = "release 1"
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


async def until(result: load.LoadResult, body: str, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while not any(s.body == body for s in result.samples[-20:]):
        assert time.monotonic() < deadline, f"never saw {body!r}: {result.bodies()}"
        await asyncio.sleep(0.05)


async def test_no_request_is_lost_through_caddy(
    caddy: Caddy,  # noqa: F811 - the fixture
    aiohttp_client: Any,
    tmp_path: Path,
) -> None:
    config = make_config(
        tmp_path / "data",
        runtime={"default_target": "process", "allow_local_sources": True,
                 "drain_seconds": 2.0, "health_timeout": 30},
        proxy=caddy.proxy_config(),
    )  # fmt: skip
    client = await aiohttp_client(create_app(config))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", {"app.py": APP})
    body = {"name": "zero", "source": "local", "path": str(repo), "runtime": "python",
            "domain": HOST}  # fmt: skip

    async def deploy() -> dict[str, Any]:
        resp = await client.post("/api/v1/deployments", json=body, headers=auth)
        assert resp.status == 202, await resp.text()
        done = await wait_done(client, auth, (await resp.json())["id"])
        assert done["status"] == "live", done["error"]
        return dict(done)

    first = await deploy()
    sid = first["service_id"]
    async with load.under_load(caddy.http_port, HOST) as result:
        await until(result, "release 1")
        await asyncio.to_thread(
            commit, repo, {"app.py": APP.replace('"release 1"', '"release 2"')}, "v2"
        )
        await deploy()
        await until(result, "release 2")
        resp = await client.post(f"/api/v1/services/{sid}/restart", headers=auth)
        assert resp.status == 200, await resp.text()
        resp = await client.post(f"/api/v1/deployments/{first['id']}/rollback", headers=auth)
        assert resp.status == 202, await resp.text()
        rolled = await wait_done(client, auth, (await resp.json())["id"])
        assert rolled["status"] == "live", rolled["error"]
        await until(result, "release 1")
    failed = result.failed
    assert result.sent >= 100, result.sent
    assert not failed, f"{len(failed)} of {result.sent} failed: {failed[:5]}"
    assert set(result.bodies()) == {"release 1", "release 2"}, result.bodies()
