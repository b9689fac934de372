"""Volumes on the docker target (SPEC §14): a named volume outlives releases and rollbacks,
DELETE removes it unless ?keep_volumes=true, and a kept one comes back to a service of the
same name."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.keys import DEPLOYER
from dployr.runtime.protocol import Mount, RuntimeFailure
from tests.docker.conftest import commit, fetch_text, make_repo, wait_done
from tests.docker.test_pipeline import deploy

Client = TestClient  # type: ignore[type-arg]

# Each GET /cgi-bin/hit appends the release's name to a file in the volume and answers the
# file: what every release before it wrote is still there when the volume outlived them.
HIT = """#!/bin/sh
cat /www/release >> /data/hits
printf 'Content-Type: text/plain\\r\\n\\r\\n'
cat /data/hits
"""
# BROKEN: the app exits at once (a failed health check); DELAY: it listens that late.
START = """#!/bin/sh
test -z "$BROKEN" || exit 3
sleep "${DELAY:-0}"
exec httpd -f -p "$PORT" -h /www
"""
DOCKERFILE = """FROM busybox:stable
COPY index.html release /www/
COPY hit /www/cgi-bin/hit
COPY start /start
RUN chmod +x /www/cgi-bin/hit
CMD ["/bin/sh", "/start"]
"""
APP = {
    "Dockerfile": DOCKERFILE,
    "hit": HIT,
    "start": START,
    "index.html": "ok\n",
    "release": "r1\n",
}
VOLUMES = [{"name": "data", "path": "/data"}]


def app_body(repo: Path, name: str = "notes", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": "local",
        "path": str(repo),
        "branch": "main",
        "runtime": "dockerfile",
        "port": 8080,
        "health_check": {"path": "/index.html", "timeout": 20},
        **extra,
    }


def agent_volumes(data_dir: Path) -> list[dict[str, Any]]:
    """This test agent's docker volumes with their labels."""
    agent = (data_dir / "agent_id").read_text().strip()
    names = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", f"label=dployr.agent={agent}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if not names:
        return []
    out = subprocess.run(
        ["docker", "volume", "inspect", *names], capture_output=True, text=True, check=True
    ).stdout
    return list(json.loads(out))


async def hit(client: Client, auth: dict[str, str], service_id: str) -> str:
    service = await (await client.get(f"/api/v1/services/{service_id}", headers=auth)).json()
    status, text = await fetch_text(service["host_port"], "/cgi-bin/hit")
    assert status == 200, text
    return text


async def rollback(client: Client, auth: dict[str, str], deployment_id: str) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/deployments/{deployment_id}/rollback", headers=auth)
    assert resp.status == 202, await resp.text()
    return await wait_done(client, auth, (await resp.json())["id"])


@pytest.mark.parametrize("strategy", ["start-first", "stop-first"])
async def test_a_volume_keeps_its_data_across_a_redeploy_and_a_rollback(
    dclient: Client, auth: dict[str, str], tmp_path: Path, data_dir: Path, strategy: str
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", APP)
    first = await deploy(dclient, auth, app_body(repo, volumes=VOLUMES, strategy=strategy))
    assert first["status"] == "live", first["error"]
    assert first["volumes"] == VOLUMES and first["strategy"] == strategy
    sid = first["service_id"]
    assert await hit(dclient, auth, sid) == "r1\n"

    # The named volume carries the agent's, the owner's and the service's labels.
    [volume] = await asyncio.to_thread(agent_volumes, data_dir)
    assert volume["Name"] == f"dployr-{sid}-data"
    labels = volume["Labels"]
    assert labels["dployr.service"] == sid and labels["dployr.volume"] == "data"
    assert labels["dployr.owner"].startswith("usr_")

    # A new release (the body names no volumes: the service keeps them) sees the file.
    await asyncio.to_thread(commit, repo, {"release": "r2\n"}, "r2")
    second = await deploy(dclient, auth, app_body(repo))
    assert second["status"] == "live", second["error"]
    assert second["volumes"] == VOLUMES and second["strategy"] == strategy
    assert await hit(dclient, auth, sid) == "r1\nr2\n"

    # A rollback to release 1 runs its image again, on the same data.
    third = await rollback(dclient, auth, first["id"])
    assert third["status"] == "live", third["error"]
    assert await hit(dclient, auth, sid) == "r1\nr2\nr1\n"
    if strategy == "stop-first":
        logs = await (
            await dclient.get(f"/api/v1/deployments/{third['id']}/logs", headers=auth)
        ).json()
        assert any("stop-first" in line["message"] for line in logs["logs"]), logs

    # Shown on the service, and with their size.
    service = await (await dclient.get(f"/api/v1/services/{sid}", headers=auth)).json()
    assert service["volumes"] == VOLUMES
    listed = await (await dclient.get(f"/api/v1/services/{sid}/volumes", headers=auth)).json()
    [item] = listed["items"]
    assert (item["name"], item["path"]) == ("data", "/data")
    assert item["size_bytes"] == len("r1\nr2\nr1\n")
    assert item["created_at"].endswith("Z")
    assert len(await asyncio.to_thread(agent_volumes, data_dir)) == 1


async def test_delete_removes_volumes_unless_kept_and_a_kept_one_comes_back(
    dclient: Client, auth: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", APP)
    first = await deploy(dclient, auth, app_body(repo, volumes=VOLUMES))
    assert first["status"] == "live", first["error"]
    assert await hit(dclient, auth, first["service_id"]) == "r1\n"

    # The target refuses to remove a volume a container still uses, and says so; a missing
    # one is no error.
    docker_target = dclient.app[DEPLOYER].targets.get("docker")
    with pytest.raises(RuntimeFailure, match="still in use by a container"):
        await docker_target.remove_volume(Mount("data", "/data", first["service_id"]))
    await docker_target.remove_volume(Mount("never-made", "/x", first["service_id"]))
    assert len(await asyncio.to_thread(agent_volumes, data_dir)) == 1

    # A bad value is a 400 naming the parameter, and deletes nothing.
    url = f"/api/v1/services/{first['service_id']}"
    resp = await dclient.delete(f"{url}?keep_volumes=maybe", headers=auth)
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["field"] == "keep_volumes"
    assert (await dclient.get(url, headers=auth)).status == 200

    # Kept: the service goes, its volume stays.
    resp = await dclient.delete(f"{url}?keep_volumes=true", headers=auth)
    assert resp.status == 204, await resp.text()
    assert (await dclient.get(url, headers=auth)).status == 404
    [kept] = await asyncio.to_thread(agent_volumes, data_dir)
    assert kept["Name"] == f"dployr-{first['service_id']}-data"

    # A new service of the same name (a new id) gets the kept volume, data and all.
    again = await deploy(dclient, auth, app_body(repo, volumes=VOLUMES))
    assert again["status"] == "live", again["error"]
    assert again["service_id"] != first["service_id"]
    assert await hit(dclient, auth, again["service_id"]) == "r1\nr1\n"
    assert [v["Name"] for v in await asyncio.to_thread(agent_volumes, data_dir)] == [kept["Name"]]

    # A plain DELETE removes the volume with the service.
    resp = await dclient.delete(f"/api/v1/services/{again['service_id']}", headers=auth)
    assert resp.status == 204, await resp.text()
    assert await asyncio.to_thread(agent_volumes, data_dir) == []

    # And a new service of that name starts empty.
    fresh = await deploy(dclient, auth, app_body(repo, volumes=VOLUMES))
    assert fresh["status"] == "live", fresh["error"]
    assert await hit(dclient, auth, fresh["service_id"]) == "r1\n"


async def test_a_volume_is_made_at_the_first_start_at_its_normalised_path(
    dclient: Client, auth: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    """A release whose app fails at once made the volume already (empty); the row stays the
    service's, and a DELETE removes both."""
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", APP)
    body = app_body(repo, volumes=[{"name": "up-loads", "path": "/srv/x/../uploads"}])
    first = await deploy(dclient, auth, {**body, "env": {"BROKEN": "1"}})
    assert first["status"] == "failed"
    sid = first["service_id"]
    # `..` normalised: the service mounts it at /srv/uploads.
    service = await (await dclient.get(f"/api/v1/services/{sid}", headers=auth)).json()
    assert service["volumes"] == [{"name": "up-loads", "path": "/srv/uploads"}]
    listed = await (await dclient.get(f"/api/v1/services/{sid}/volumes", headers=auth)).json()
    assert [(v["name"], v["size_bytes"]) for v in listed["items"]] == [("up-loads", 0)]
    resp = await dclient.delete(f"/api/v1/services/{sid}", headers=auth)
    assert resp.status == 204
    assert await asyncio.to_thread(agent_volumes, data_dir) == []


BAD_VOLUMES = [
    ([{"name": "Data", "path": "/data"}], "volumes.0.name"),
    ([{"name": "-x", "path": "/data"}], "volumes.0.name"),
    ([{"name": "a" * 41, "path": "/data"}], "volumes.0.name"),
    ([{"name": "data", "path": "data"}], "volumes.0.path"),
    ([{"name": "data", "path": "/app/../etc/x"}], "volumes.0.path"),
    ([{"name": "data", "path": "/etc/x"}], "volumes.0.path"),
    ([{"name": "data", "path": "/"}], "volumes.0.path"),
    ([{"name": "data", "path": "/proc"}], "volumes.0.path"),
    ([{"name": "data", "path": "/a"}, {"name": "data", "path": "/b"}], "volumes.1.name"),
    ([{"name": "a", "path": "/data"}, {"name": "b", "path": "/data/"}], "volumes.1.path"),
    ([{"name": "data"}], "volumes.0.path"),
    ([{"name": "data", "path": "/data", "mode": "ro"}], "volumes.0.mode"),
]


async def test_bad_volumes_are_refused_without_side_effects(
    dclient: Client, auth: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", APP)
    for volumes, field in BAD_VOLUMES:
        resp = await dclient.post(
            "/api/v1/deployments", json=app_body(repo, volumes=volumes), headers=auth
        )
        error = (await resp.json())["error"]
        assert resp.status == 400, (volumes, error)
        assert error["code"] == "validation_error"
        assert error["details"]["field"] == field, (volumes, error)
    resp = await dclient.post(
        "/api/v1/deployments", json=app_body(repo, strategy="later"), headers=auth
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["field"] == "strategy"
    for path in ("/api/v1/deployments", "/api/v1/services"):
        listing = await (await dclient.get(path, headers=auth)).json()
        assert listing["total"] == 0, listing
    assert await asyncio.to_thread(agent_volumes, data_dir) == []


async def test_an_images_own_anonymous_volume_goes_with_its_instance(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    """Many images declare VOLUME (postgres, redis, …): the engine gives each container an
    anonymous volume there, which would stay on the disk after every release removed."""
    context = tmp_path / "image"
    await asyncio.to_thread(context.mkdir)
    await asyncio.to_thread(
        (context / "Dockerfile").write_text, "FROM busybox:stable\nVOLUME /cache\n"
    )
    tag = f"dployr-test/with-volume:{tmp_path.name.lower()[-20:]}"
    built = await asyncio.to_thread(
        subprocess.run,
        ["docker", "build", "-q", "--label", "dployr.test=volumes", "-t", tag, str(context)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    try:
        serve = 'mkdir -p /www && echo up > /www/index.html && exec httpd -f -p "$PORT" -h /www'
        body = {"name": "cached", "source": "image", "runtime": "image", "image": tag,
                "run_cmd": serve, "port": 8080, "target": "docker"}  # fmt: skip
        live = await deploy(dclient, auth, body)
        assert live["status"] == "live", live["error"]
        service = await (
            await dclient.get(f"/api/v1/services/{live['service_id']}", headers=auth)
        ).json()
        inspected = await asyncio.to_thread(
            subprocess.run,
            ["docker", "inspect", service["container_id"]],
            capture_output=True,
            text=True,
            check=True,
        )
        mounts = json.loads(inspected.stdout)[0]["Mounts"]
        anonymous = [m["Name"] for m in mounts if m["Destination"] == "/cache"]
        assert anonymous, mounts
        resp = await dclient.delete(f"/api/v1/services/{live['service_id']}", headers=auth)
        assert resp.status == 204
        gone = await asyncio.to_thread(
            subprocess.run, ["docker", "volume", "inspect", anonymous[0]], capture_output=True
        )
        assert gone.returncode != 0, "the anonymous volume outlived its container"
    finally:
        await asyncio.to_thread(subprocess.run, ["docker", "rmi", "-f", tag], capture_output=True)
