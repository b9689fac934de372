"""restart, start and `env ?apply=true` are blue/green like a release: the new instance starts
beside the old one on a fresh port and takes over only once healthy; one that fails its check
is removed and the old one serves on, untouched."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

from aiohttp.test_utils import TestClient

from tests.docker.conftest import fetch_text
from tests.docker.test_pipeline import deploy

# Exits at once when BROKEN is set: the new instance never answers its health check.
SERVE = (
    'test -z "$BROKEN" || { echo broken on purpose >&2; exit 3; }; '
    'mkdir -p /www && echo "$GREETING" > /www/index.html && exec httpd -f -p "$PORT" -h /www'
)
Client = TestClient  # type: ignore[type-arg]


def running(container_id: str) -> bool:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", container_id],
        capture_output=True, text=True,
    )  # fmt: skip
    return out.returncode == 0 and out.stdout.strip() == "true"


async def service(client: Client, auth: dict[str, str], sid: str) -> dict[str, Any]:
    return dict(await (await client.get(f"/api/v1/services/{sid}", headers=auth)).json())


async def set_env(
    client: Client, auth: dict[str, str], sid: str, key: str, value: str
) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        f"/api/v1/services/{sid}/env?apply=true", json={"key": key, "value": value}, headers=auth
    )
    return resp.status, dict(await resp.json())


async def test_restart_and_env_apply_are_blue_green(dclient: Client, auth: dict[str, str]) -> None:
    body = {"name": "bg", "source": "image", "runtime": "image", "image": "busybox:stable",
            "run_cmd": SERVE, "port": 8080, "env": {"GREETING": "one"},
            "health_check": {"path": "/", "timeout": 10}}  # fmt: skip
    live = await deploy(dclient, auth, body)
    assert live["status"] == "live", live["error"]
    sid = live["service_id"]
    first = await service(dclient, auth, sid)
    assert await fetch_text(first["host_port"]) == (200, "one\n")

    status, _ = await set_env(dclient, auth, sid, "GREETING", "two")
    assert status == 200
    second = await service(dclient, auth, sid)
    # A new instance on a fresh port took over; the old one drained and stopped.
    assert second["host_port"] != first["host_port"]
    assert second["container_id"] != first["container_id"]
    assert await fetch_text(second["host_port"]) == (200, "two\n")
    assert not await asyncio.to_thread(running, first["container_id"])

    # A restart whose new instance fails its check: 503, and nothing changed.
    status, error = await set_env(dclient, auth, sid, "BROKEN", "1")
    assert status == 503, error
    assert "failed its health check" in error["error"]["message"], error
    assert "the running one keeps serving" in error["error"]["message"]
    assert error["error"]["details"]["health"]
    after = await service(dclient, auth, sid)
    assert (after["host_port"], after["container_id"]) == (
        second["host_port"],
        second["container_id"],
    )
    assert after["status"] == "running"
    assert await fetch_text(second["host_port"]) == (200, "two\n")

    # stop, then start (with the variable gone): a new instance, healthy, on a fresh port.
    resp = await dclient.delete(f"/api/v1/services/{sid}/env/BROKEN", headers=auth)
    assert resp.status == 204
    assert (await dclient.post(f"/api/v1/services/{sid}/stop", headers=auth)).status == 200
    resp = await dclient.post(f"/api/v1/services/{sid}/start", headers=auth)
    assert resp.status == 200, await resp.text()
    started = await service(dclient, auth, sid)
    assert started["status"] == "running" and started["container_id"] != second["container_id"]
    assert await fetch_text(started["host_port"]) == (200, "two\n")
    ids = await asyncio.to_thread(
        subprocess.run,
        ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=dployr.service={sid}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ids.stdout.split() == [started["container_id"]]
