"""Images a release still uses are kept: deleting a deployment from the history never breaks
the live release, a stopped service's current one, or a rollback."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient

from tests.docker.conftest import STATIC_APP, agent_images, commit, fetch_text, make_repo, wait_done
from tests.docker.test_pipeline import deploy, static_body


async def test_deleting_a_release_keeps_the_image_a_rollback_runs(
    dclient: TestClient, auth: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:  # type: ignore[type-arg]
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    first = await deploy(dclient, auth, static_body(repo))
    await asyncio.to_thread(commit, repo, {"index.html": "hello v2\n"}, "v2")
    second = await deploy(dclient, auth, static_body(repo))
    assert first["status"] == second["status"] == "live"

    # Roll back to release 1: release 3 runs release 1's image.
    resp = await dclient.post(f"/api/v1/deployments/{first['id']}/rollback", headers=auth)
    assert resp.status == 202, await resp.text()
    third = await wait_done(dclient, auth, (await resp.json())["id"])
    assert third["status"] == "live" and third["artifact"] == first["artifact"], third
    service_url = f"/api/v1/services/{third['service_id']}"

    # Stopped, the service runs no container: nothing holds the image but the history.
    resp = await dclient.post(f"{service_url}/stop", headers=auth)
    assert resp.status == 200, await resp.text()

    # Release 1 leaves the history; its image stays, because release 3 (current) names it.
    resp = await dclient.delete(f"/api/v1/deployments/{first['id']}", headers=auth)
    assert resp.status == 204, await resp.text()
    assert first["artifact"] in await asyncio.to_thread(agent_images, data_dir)
    resp = await dclient.post(f"{service_url}/start", headers=auth)
    assert resp.status == 200, await resp.text()
    status = await resp.json()
    assert await fetch_text(status["host_port"]) == (200, "hello v1\n")

    # Release 2's image is no one's any more: it goes with its deployment.
    resp = await dclient.delete(f"/api/v1/deployments/{second['id']}", headers=auth)
    assert resp.status == 204, await resp.text()
    assert second["artifact"] not in await asyncio.to_thread(agent_images, data_dir)
