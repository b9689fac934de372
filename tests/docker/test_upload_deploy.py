"""An uploaded directory (`tar czf` of it, as a person would make it) goes live on the docker
target, a PUT rebuilds it from the same kept archive, and a rollback reuses the first image."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.docker.conftest import fetch_text, wait_done

Client = TestClient  # type: ignore[type-arg]


def pack(tmp_path: Path) -> bytes:
    """A directory with a page, a nested file and a link inside the tree, packed by tar(1)."""
    site = tmp_path / "site"
    (site / "docs").mkdir(parents=True)
    (site / "index.html").write_text("uploaded v1\n")
    (site / "docs" / "guide.txt").write_text("a nested file\n")
    (site / "latest.txt").symlink_to("docs/guide.txt")
    return subprocess.run(
        ["tar", "czf", "-", "-C", str(site), "."], check=True, capture_output=True
    ).stdout


def form(deployment: dict[str, Any], archive: bytes) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("deployment", json.dumps(deployment), content_type="application/json")
    data.add_field(
        "archive", io.BytesIO(archive), filename="site.tar.gz", content_type="application/gzip"
    )
    return data


async def test_an_upload_goes_live_on_docker_and_a_put_rebuilds_it(
    dclient: Client, auth: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    archive = await asyncio.to_thread(pack, tmp_path)
    body = {
        "name": "up",
        "runtime": "static",
        "target": "docker",
        "port": 8080,
        "health_check": {"path": "/", "timeout": 20},
    }
    resp = await dclient.post("/api/v1/deployments/upload", data=form(body, archive), headers=auth)
    assert resp.status == 202, await resp.text()
    first = await wait_done(dclient, auth, (await resp.json())["id"])
    assert first["status"] == "live", first
    assert first["source"] == "upload" and first["commit_sha"] is None
    assert first["stages"][0]["message"] == "read 2 files, 26 bytes"
    assert await fetch_text(first["host_port"]) == (200, "uploaded v1\n")
    assert await fetch_text(first["host_port"], "/latest.txt") == (200, "a nested file\n")

    greet = 'echo "$GREETING" > /app/hi.txt && exec httpd -f -p "$PORT" -h /app'
    resp = await dclient.put(
        f"/api/v1/deployments/{first['id']}",
        json={"run_cmd": greet, "env": {"GREETING": "rebuilt"}},
        headers=auth,
    )
    assert resp.status == 202, await resp.text()
    second = await wait_done(dclient, auth, (await resp.json())["id"])
    assert second["status"] == "live", second
    assert second["artifact"] != first["artifact"]  # built again, from the kept archive
    assert second["stages"][1]["status"] == "succeeded"
    assert await fetch_text(second["host_port"]) == (200, "uploaded v1\n")
    assert await fetch_text(second["host_port"], "/hi.txt") == (200, "rebuilt\n")
    kept = data_dir / "uploads" / second["service_id"] / f"{second['id']}.tar.gz"
    assert await asyncio.to_thread(kept.read_bytes) == archive

    resp = await dclient.post(f"/api/v1/deployments/{first['id']}/rollback", headers=auth)
    assert resp.status == 202, await resp.text()
    back = await wait_done(dclient, auth, (await resp.json())["id"])
    assert back["status"] == "live", back
    assert back["artifact"] == first["artifact"]
    assert [s["status"] for s in back["stages"][:2]] == ["skipped", "skipped"]
    assert await fetch_text(back["host_port"]) == (200, "uploaded v1\n")
