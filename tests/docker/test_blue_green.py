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
from dployr.store import routes, services
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


async def test_a_deploy_of_a_stopped_service_runs_it_and_routes_to_it(
    dclient: Client, auth: dict[str, str]
) -> None:
    """A release that goes live runs: the service wants to run again (reconcile must not stop
    it at the next start) and the route table's upstream names it (the next apply keeps it)."""
    body = {"name": "bgs", "source": "image", "runtime": "image", "image": "busybox:stable",
            "run_cmd": SERVE, "port": 8080, "env": {"GREETING": "one"},
            "domain": "bgs.localhost", "health_check": {"path": "/", "timeout": 10}}  # fmt: skip
    live = await deploy(dclient, auth, body)
    sid = live["service_id"]
    assert (await dclient.post(f"/api/v1/services/{sid}/stop", headers=auth)).status == 200
    assert (await service_of(dclient, auth, sid))["desired_state"] == "stopped"
    again = await deploy(dclient, auth, {**body, "env": {"GREETING": "two"}})
    assert again["status"] == "live", again["error"]
    now = await service_of(dclient, auth, sid)
    assert now["desired_state"] == "running" and now["status"] == "running", now
    upstreams = await routes.live_upstreams(dclient.app[DB])
    assert upstreams[sid] == [f"127.0.0.1:{now['host_port']}"]


async def test_a_failed_start_leaves_the_row_naming_what_is_there(
    dclient: Client, auth: dict[str, str]
) -> None:
    """The container exited behind the daemon's back; a start whose new instance fails its
    check answers 503 and leaves the old container (and the row naming it) in place."""
    body = {"name": "bgf", "source": "image", "runtime": "image", "image": "busybox:stable",
            "run_cmd": SERVE, "port": 8080, "env": {"GREETING": "one"},
            "health_check": {"path": "/", "timeout": 10}}  # fmt: skip
    live = await deploy(dclient, auth, body)
    sid = live["service_id"]
    before = await service_of(dclient, auth, sid)
    await asyncio.to_thread(
        subprocess.run, ["docker", "stop", "-t", "1", before["container_id"]], check=True,
        capture_output=True,
    )  # fmt: skip
    resp = await dclient.post(
        f"/api/v1/services/{sid}/env", json={"key": "BROKEN", "value": "1"}, headers=auth
    )
    assert resp.status == 200
    resp = await dclient.post(f"/api/v1/services/{sid}/start", headers=auth)
    assert resp.status == 503, await resp.text()
    after = await service_of(dclient, auth, sid)
    assert after["container_id"] == before["container_id"]
    exists = await asyncio.to_thread(
        subprocess.run, ["docker", "inspect", before["container_id"]], capture_output=True
    )
    assert exists.returncode == 0, "the row names a container that is gone"


async def test_a_route_made_while_its_service_is_deleted_goes_with_it(
    dclient: Client, auth: dict[str, str]
) -> None:
    """DELETE /services takes the routes first, then stops the instances (seconds), then the
    row: a route the API made in between is removed with the row, with its route.deleted."""
    body = {"name": "bgd", "source": "image", "runtime": "image", "image": "busybox:stable",
            "run_cmd": SERVE, "port": 8080, "env": {"GREETING": "one"},
            "health_check": {"path": "/", "timeout": 10}}  # fmt: skip
    live = await deploy(dclient, auth, body)
    sid = live["service_id"]
    deleting = asyncio.create_task(dclient.delete(f"/api/v1/services/{sid}", headers=auth))
    made = None
    for _ in range(100):  # while its instance stops (httpd as PID 1 waits out the grace)
        resp = await dclient.post(
            "/api/v1/proxy/routes",
            json={"domain": "late.localhost", "service_id": sid},
            headers=auth,
        )
        if resp.status == 201:
            made = await resp.json()
            break
        await asyncio.sleep(0.05)
    assert made is not None, "no route could be made while the service was deleted"
    assert (await deleting).status == 204
    assert await dclient.app[DB].fetchval("SELECT COUNT(*) FROM routes") == 0
    deleted = await dclient.app[DB].fetchall("SELECT data FROM events WHERE type = 'route.deleted'")
    assert any(made["id"] in row[0] for row in deleted), deleted
