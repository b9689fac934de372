"""A link to a service on the process target: the URL names the database's loopback port
(SPEC §14), and an app on the host reads and writes the database through it, across a
redeploy."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dployr.keys import DB, DEPLOYER
from dployr.store.services import read_env
from tests.databases.conftest import Client, running_database
from tests.docker.conftest import commit, fetch_text, make_repo, wait_done

# Each GET /hit increments a Redis key over the URL in $DATABASE_URL (Redis's own protocol,
# from the standard library) and answers the count.
APP = """\
import http.server, os, socket
from urllib.parse import urlsplit

VERSION = "v1"


def command(stream, *args):
    stream.write(b"*%d\\r\\n" % len(args))
    for arg in args:
        stream.write(b"$%d\\r\\n%s\\r\\n" % (len(arg.encode()), arg.encode()))
    stream.flush()
    return stream.readline().decode().strip()


def hit():
    url = urlsplit(os.environ["DATABASE_URL"])
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        stream = conn.makefile("rwb")
        assert command(stream, "AUTH", url.password) == "+OK"
        return command(stream, "INCR", "hits").lstrip(":")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (hit() if self.path == "/hit" else VERSION).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


async def test_a_process_service_reaches_its_database_on_the_loopback_port(
    dbclient: Client, auth: dict[str, str], tmp_path: Path
) -> None:
    database, _ = await running_database(dbclient, auth, name="counts", engine="redis")
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", {"app.py": APP})
    body = {"name": "counter", "source": "local", "path": str(repo), "runtime": "python",
            "target": "process", "health_check": {"path": "/", "timeout": 60}}  # fmt: skip
    resp = await dbclient.post("/api/v1/deployments", json=body, headers=auth)
    first = await wait_done(dbclient, auth, (await resp.json())["id"])
    assert first["status"] == "live", first["error"]
    service_id = first["service_id"]

    resp = await dbclient.post(
        f"/api/v1/databases/{database['id']}/links?apply=true",
        json={"service_id": service_id},
        headers=auth,
    )
    assert resp.status == 201, await resp.text()
    service = await (await dbclient.get(f"/api/v1/services/{service_id}", headers=auth)).json()
    assert await fetch_text(service["host_port"], "/hit") == (200, "1")
    assert await fetch_text(service["host_port"], "/hit") == (200, "2")

    await asyncio.to_thread(commit, repo, {"app.py": APP.replace('"v1"', '"v2"')}, "v2")
    resp = await dbclient.post("/api/v1/deployments", json=body, headers=auth)
    second = await wait_done(dbclient, auth, (await resp.json())["id"])
    assert second["status"] == "live", second["error"]
    assert await fetch_text(second["host_port"], "/") == (200, "v2")
    assert await fetch_text(second["host_port"], "/hit") == (200, "3")

    # What it connected to: the loopback port, never the name on the docker network.
    env = await read_env(dbclient.app[DB], service_id, dbclient.app[DEPLOYER].box)
    url = next(v.value for v in env if v.key == "DATABASE_URL")
    assert url.endswith(f"@127.0.0.1:{database['host_port']}/0"), url
    resp = await dbclient.delete(f"/api/v1/services/{service_id}", headers=auth)
    assert resp.status in (200, 202, 204)
