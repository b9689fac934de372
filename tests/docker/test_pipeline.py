"""The pipeline for real: git repo → image → container → health check → live, and back."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.docker.conftest import (
    STATIC_APP,
    agent_containers,
    agent_images,
    commit,
    fetch_text,
    make_repo,
    wait_done,
)

RUN_WITH_GREETING = 'echo "$GREETING" > /app/greeting.txt && exec httpd -f -p "$PORT" -h /app'


def static_body(repo: Path, name: str = "web", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": "local",
        "path": str(repo),
        "branch": "main",
        "runtime": "static",
        "port": 8080,
        "health_check": {"path": "/", "timeout": 20},
        **extra,
    }


async def deploy(client: TestClient, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:  # type: ignore[type-arg]
    resp = await client.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    created = await resp.json()
    assert created["status"] == "queued"
    return await wait_done(client, auth, created["id"])


async def test_deploy_serves_and_service_operations(
    dclient: TestClient, auth: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:  # type: ignore[type-arg]
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    body = static_body(repo, run_cmd=RUN_WITH_GREETING, env={"GREETING": "hi from env"})
    live = await deploy(dclient, auth, body)
    assert live["status"] == "live", live
    assert live["commit_sha"] and len(live["commit_sha"]) == 40
    assert [s["status"] for s in live["stages"]] == ["succeeded"] * 5
    assert live["progress"] == 100

    service = await (
        await dclient.get(f"/api/v1/services/{live['service_id']}", headers=auth)
    ).json()
    assert service["status"] == "running"
    assert service["current_deployment"]["id"] == live["id"]
    port = service["host_port"]
    assert service["container_id"]
    assert await fetch_text(port) == (200, "hello v1\n")
    assert await fetch_text(port, "/greeting.txt") == (200, "hi from env\n")

    # The deployment log has the stages; the service log has the app's output.
    logs = await (await dclient.get(f"/api/v1/deployments/{live['id']}/logs", headers=auth)).json()
    assert any("==> live" in line["message"] for line in logs["logs"])

    sid = live["service_id"]
    resp = await dclient.post(f"/api/v1/services/{sid}/start", headers=auth)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "invalid_state"
    resp = await dclient.post(f"/api/v1/services/{sid}/stop", headers=auth)
    assert resp.status == 200 and (await resp.json())["status"] == "stopped"
    assert await asyncio.to_thread(agent_containers, data_dir, False) == []
    resp = await dclient.post(f"/api/v1/services/{sid}/stop", headers=auth)
    assert resp.status == 409
    # Env set while stopped applies at the next start.
    resp = await dclient.post(
        f"/api/v1/services/{sid}/env", json={"key": "GREETING", "value": "changed"}, headers=auth
    )
    assert resp.status == 200
    resp = await dclient.post(f"/api/v1/services/{sid}/start", headers=auth)
    status = await resp.json()
    assert resp.status == 200 and status["status"] == "running", status
    assert await _eventually_text(status["host_port"], "/greeting.txt") == "changed\n"
    resp = await dclient.post(f"/api/v1/services/{sid}/restart", headers=auth)
    assert resp.status == 200 and (await resp.json())["status"] == "running"

    # Delete removes containers, images and state.
    resp = await dclient.delete(f"/api/v1/services/{sid}", headers=auth)
    assert resp.status == 204
    assert await asyncio.to_thread(agent_containers, data_dir) == []
    assert await asyncio.to_thread(agent_images, data_dir) == []
    resp = await dclient.get(f"/api/v1/services/{sid}", headers=auth)
    assert resp.status == 404


async def _eventually_text(port: int, path: str) -> str:
    for _ in range(50):
        try:
            status, text = await fetch_text(port, path)
            if status == 200:
                return text
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing on port {port}{path}")


async def test_new_release_rollback_and_failures_keep_old_serving(
    dclient: TestClient, auth: dict[str, str], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    first = await deploy(dclient, auth, static_body(repo))
    assert first["status"] == "live"
    await asyncio.to_thread(commit, repo, {"index.html": "hello v2\n"}, "v2")
    second = await deploy(dclient, auth, static_body(repo))
    assert second["status"] == "live" and second["number"] == 2
    old = await (await dclient.get(f"/api/v1/deployments/{first['id']}", headers=auth)).json()
    assert old["status"] == "superseded"
    service_url = f"/api/v1/services/{second['service_id']}"
    port = (await (await dclient.get(service_url, headers=auth)).json())["host_port"]
    assert await fetch_text(port) == (200, "hello v2\n")

    # A broken build fails; release 2 keeps serving.
    broken = await deploy(dclient, auth, static_body(repo, build_cmd="echo building; exit 3"))
    assert broken["status"] == "failed" and broken["error"], broken
    assert next(s for s in broken["stages"] if s["name"] == "building")["status"] == "failed"
    assert await fetch_text(port) == (200, "hello v2\n")

    # A failing health check fails; release 2 keeps serving.
    unhealthy = await deploy(
        dclient, auth, static_body(repo, health_check={"path": "/missing", "timeout": 3})
    )
    assert unhealthy["status"] == "failed" and "health check" in unhealthy["error"], unhealthy
    assert await fetch_text(port) == (200, "hello v2\n")

    # Rollback to release 1: no build, the old image, and release 2 becomes rolled_back.
    resp = await dclient.post(f"/api/v1/deployments/{first['id']}/rollback", headers=auth)
    assert resp.status == 202, await resp.text()
    rollback = await wait_done(dclient, auth, (await resp.json())["id"])
    assert rollback["status"] == "live" and rollback["rollback_of"] == first["id"]
    assert rollback["triggered_by"] == "rollback"
    stages = {s["name"]: s["status"] for s in rollback["stages"]}
    assert stages["building"] == "skipped" and stages["fetching"] == "skipped"
    replaced = await (await dclient.get(f"/api/v1/deployments/{second['id']}", headers=auth)).json()
    assert replaced["status"] == "rolled_back"
    port = (await (await dclient.get(service_url, headers=auth)).json())["host_port"]
    assert await fetch_text(port) == (200, "hello v1\n")

    # A live deployment cannot be deleted; a finished one can.
    resp = await dclient.delete(f"/api/v1/deployments/{rollback['id']}", headers=auth)
    assert resp.status == 409
    resp = await dclient.delete(f"/api/v1/deployments/{broken['id']}", headers=auth)
    assert resp.status == 204


async def test_a_failed_build_leaves_no_layers_behind(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    """The layers of the steps a failed build finished are removed with it: untagged and
    unlabelled, nothing else would ever remove them from a small VPS's disk."""
    files = {**STATIC_APP, "unique.txt": f"{tmp_path}\n"}  # no cached layer to reuse
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", files)
    broken = await deploy(dclient, auth, static_body(repo, build_cmd="echo building; exit 3"))
    assert broken["status"] == "failed", broken
    resp = await dclient.get(f"/api/v1/deployments/{broken['id']}/logs", headers=auth)
    # The layers this build made: not the base image (step 1), not a cached step's.
    layers, previous = [], ""
    for line in (await resp.json())["logs"]:
        message = line["message"]
        made = message.startswith(" ---> ") and " " not in message[6:]
        if made and not previous.startswith(("Step 1/", " ---> Using cache")):
            layers.append(message[6:])
        previous = message
    assert layers, "the build log names the layers its steps made"

    def existing(ids: list[str]) -> list[str]:
        return [
            i
            for i in ids
            if subprocess.run(["docker", "image", "inspect", i], capture_output=True).returncode
            == 0
        ]

    assert await asyncio.to_thread(existing, layers) == []


async def test_project_with_services_deletes_only_with_force(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
    data_dir: Path,
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    project = await (
        await dclient.post("/api/v1/projects", json={"name": "shop"}, headers=auth)
    ).json()
    live = await deploy(dclient, auth, static_body(repo, project_id=project["id"]))
    assert live["status"] == "live" and live["project_id"] == project["id"]
    listed = await (
        await dclient.get(f"/api/v1/projects/{project['id']}/deployments", headers=auth)
    ).json()
    assert [d["id"] for d in listed["items"]] == [live["id"]]

    resp = await dclient.delete(f"/api/v1/projects/{project['id']}", headers=auth)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "conflict"
    resp = await dclient.delete(f"/api/v1/projects/{project['id']}?force=true", headers=auth)
    assert resp.status == 204
    assert await asyncio.to_thread(agent_containers, data_dir) == []
    resp = await dclient.get(f"/api/v1/services/{live['service_id']}", headers=auth)
    assert resp.status == 404


async def test_services_without_a_project_go_to_default(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    live = await deploy(dclient, auth, static_body(repo))
    project = await (
        await dclient.get(f"/api/v1/projects/{live['project_id']}", headers=auth)
    ).json()
    assert project["name"] == "default"
    templates = await (await dclient.get("/api/v1/templates", headers=auth)).json()
    assert {t["id"] for t in templates["items"]} >= {"nodejs", "python", "go", "rust", "static"}


async def test_image_source_and_the_repos_own_dockerfile(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    serve = 'mkdir -p /www && echo from-image > /www/index.html && exec httpd -f -p "$PORT" -h /www'
    image = {"name": "img", "source": "image", "runtime": "image", "image": "busybox:stable",
             "run_cmd": serve, "resources": {"memory": "64m", "cpus": 0.5}}  # fmt: skip
    live = await deploy(dclient, auth, image)
    assert live["status"] == "live", live["error"]
    assert live["artifact"] == "busybox:stable"
    assert {s["name"]: s["status"] for s in live["stages"]}["building"] == "skipped"
    service = await (
        await dclient.get(f"/api/v1/services/{live['service_id']}", headers=auth)
    ).json()
    assert await fetch_text(service["host_port"]) == (200, "from-image\n")
    limits = await asyncio.to_thread(
        subprocess.run,
        ["docker", "inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
         service["container_id"]],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert limits.stdout.split() == [str(64 * 1024 * 1024), "500000000"]

    dockerfile = (
        "FROM busybox:stable\nCOPY index.html /www/index.html\n"
        'CMD ["/bin/sh", "-c", "exec httpd -f -p \\"$PORT\\" -h /www"]\n'
    )
    repo = await asyncio.to_thread(
        make_repo, tmp_path / "own", {"Dockerfile": dockerfile, "index.html": "own file\n"}
    )
    own = await deploy(dclient, auth, static_body(repo, name="own", runtime="dockerfile"))
    assert own["status"] == "live", own["error"]
    service = await (
        await dclient.get(f"/api/v1/services/{own['service_id']}", headers=auth)
    ).json()
    assert await fetch_text(service["host_port"]) == (200, "own file\n")
