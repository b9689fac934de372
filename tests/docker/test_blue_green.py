"""restart, start and `env ?apply=true` are blue/green like a release: the new instance starts
beside the old one on a fresh port and takes over only once healthy; one that fails its check
is removed and the old one serves on, untouched."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.keys import DB, DEPLOYER
from dployr.pipeline import control
from dployr.store import services
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


async def service_of(client: Client, auth: dict[str, str], sid: str) -> dict[str, Any]:
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
    first = await service_of(dclient, auth, sid)
    assert await fetch_text(first["host_port"]) == (200, "one\n")

    status, _ = await set_env(dclient, auth, sid, "GREETING", "two")
    assert status == 200
    second = await service_of(dclient, auth, sid)
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
    after = await service_of(dclient, auth, sid)
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
    started = await service_of(dclient, auth, sid)
    assert started["status"] == "running" and started["container_id"] != second["container_id"]
    assert await fetch_text(started["host_port"]) == (200, "two\n")
    ids = await asyncio.to_thread(
        subprocess.run,
        ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=dployr.service={sid}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ids.stdout.split() == [started["container_id"]]


async def test_a_cancelled_restart_leaves_the_old_instance_serving(
    dclient: Client, auth: dict[str, str]
) -> None:
    """The restart is cancelled (the daemon stops) while its new instance is still starting
    up: that instance is removed, the old one serves on, the row still names it."""
    slow = f"sleep ${{DELAY:-0}}; {SERVE}"
    body = {"name": "bgc", "source": "image", "runtime": "image", "image": "busybox:stable",
            "run_cmd": slow, "port": 8080, "env": {"GREETING": "old"},
            "health_check": {"path": "/", "timeout": 30}}  # fmt: skip
    live = await deploy(dclient, auth, body)
    assert live["status"] == "live", live["error"]
    sid = live["service_id"]
    before = await service_of(dclient, auth, sid)
    resp = await dclient.post(
        f"/api/v1/services/{sid}/env", json={"key": "DELAY", "value": "30"}, headers=auth
    )
    assert resp.status == 200
    deployer = dclient.app[DEPLOYER]
    record = await services.get_service(dclient.app[DB], sid, None)
    assert record is not None
    restart = asyncio.create_task(control.restart_service(deployer, record))
    label = f"label=dployr.service={sid}"
    for _ in range(200):  # until the new instance runs beside the old one
        ids = await asyncio.to_thread(
            subprocess.run, ["docker", "ps", "-q", "--filter", label], capture_output=True,
            text=True,
        )  # fmt: skip
        if len(ids.stdout.split()) == 2:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the new instance never started")
    restart.cancel()
    with pytest.raises(asyncio.CancelledError):
        await restart
    after = await service_of(dclient, auth, sid)
    assert (after["container_id"], after["host_port"]) == (
        before["container_id"],
        before["host_port"],
    )
    assert await fetch_text(before["host_port"]) == (200, "old\n")
    ids = await asyncio.to_thread(
        subprocess.run, ["docker", "ps", "-q", "--no-trunc", "--filter", label],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ids.stdout.split() == [before["container_id"]]
