"""Bad inputs: each a 4xx with the SPEC's error shape, and no side effect at all."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.docker.conftest import STATIC_APP, make_repo, wait_done


def hostile_bodies(marker: Path, repo: Path) -> list[tuple[dict[str, Any], str]]:
    """(deployment body, the field the 400 must name)."""
    base = {"name": "evil", "source": "remote", "remote": "git://127.0.0.1/r.git",
            "branch": "main", "runtime": "static", "port": 8080}  # fmt: skip
    touch = f"touch {marker}"
    return [
        ({**base, "remote": f"ext::sh -c {touch}"}, "remote"),
        ({**base, "remote": "fd::3"}, "remote"),
        ({**base, "remote": "file:///etc"}, "remote"),
        ({**base, "remote": str(repo)}, "remote"),
        ({**base, "remote": f"ssh://-oProxyCommand={touch.replace(' ', '%20')}/x"}, "remote"),
        ({**base, "remote": f"-u{touch}"}, "remote"),
        ({**base, "remote": "git://127.0.0.1/r.git\n--upload-pack=x"}, "remote"),
        ({**base, "remote": "http://169.254.169.254/latest/meta-data"}, "remote"),
        ({**base, "branch": f"--upload-pack={touch}"}, "branch"),
        ({**base, "branch": "-x"}, "branch"),
        ({**base, "branch": "a..b"}, "branch"),
        ({**base, "name": "a/b"}, "name"),
        ({**base, "name": ".."}, "name"),
        ({**base, "name": "../../etc"}, "name"),
        ({**base, "port": 0}, "port"),
        ({**base, "port": 65536}, "port"),
        ({**base, "port": "abc"}, "port"),
        ({**base, "runtime": "cobol"}, "runtime"),
        ({**base, "env": {"A=B": "x"}}, "env"),
        ({**base, "env": {"A B": "x"}}, "env"),
        ({**base, "env": {"A\nB": "x"}}, "env"),
        ({**base, "env": {"OK": "nul\x00byte"}}, "env.OK"),
        ({**base, "build_cmd": "echo hi\nRUN touch /x"}, "build_cmd"),
        ({**base, "domain": "a.com; touch x"}, "domain"),
        ({**base, "source": "image", "runtime": "static", "image": "busybox:stable"}, "runtime"),
        ({**base, "resources": {"memory": "1 GB"}}, "resources.memory"),
    ]


async def test_hostile_deployments_are_refused_without_side_effects(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    for body, field in hostile_bodies(marker, repo):
        resp = await dclient.post("/api/v1/deployments", json=body, headers=auth)
        error = (await resp.json())["error"]
        assert resp.status == 400, (body, error)
        assert error["code"] == "validation_error"
        assert error["details"]["field"] == field, (body, error)
    await asyncio.sleep(0.5)  # anything that slipped through would have run by now
    assert not await asyncio.to_thread(marker.exists)
    for path in ("/api/v1/deployments", "/api/v1/services"):
        listing = await (await dclient.get(path, headers=auth)).json()
        assert listing["total"] == 0, listing


@pytest.mark.parametrize("allow_local", [False])
async def test_local_source_is_forbidden_by_default(
    aiohttp_client: Any, docker_engine: None, data_dir: Path, tmp_path: Path, allow_local: bool
) -> None:
    from dployr.app import create_app
    from tests.conftest import login, register
    from tests.docker.conftest import deploy_config

    client = await aiohttp_client(
        create_app(deploy_config(data_dir, allow_local_sources=allow_local))
    )
    await register(client)
    headers = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    body = {"name": "web", "source": "local", "path": str(tmp_path), "runtime": "static"}
    resp = await client.post("/api/v1/deployments", json=body, headers=headers)
    assert resp.status == 403
    assert (await resp.json())["error"]["details"]["field"] == "source"


async def test_another_users_objects_answer_404(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    from tests.conftest import login, register

    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    body = {"name": "web", "source": "local", "path": str(repo), "runtime": "static"}
    created = await (await dclient.post("/api/v1/deployments", json=body, headers=auth)).json()
    await wait_done(dclient, auth, created["id"])
    await register(dclient, email="other@example.com", headers=auth)
    other = {
        "Authorization": f"Bearer {(await login(dclient, 'other@example.com'))['access_token']}"
    }
    for method, path in (
        ("GET", f"/api/v1/deployments/{created['id']}"),
        ("GET", f"/api/v1/deployments/{created['id']}/logs"),
        ("POST", f"/api/v1/deployments/{created['id']}/rollback"),
        ("GET", f"/api/v1/services/{created['service_id']}"),
        ("POST", f"/api/v1/services/{created['service_id']}/stop"),
        ("DELETE", f"/api/v1/services/{created['service_id']}"),
        ("GET", f"/api/v1/services/{created['service_id']}/env"),
    ):
        resp = await dclient.request(method, path, headers=other)
        assert resp.status == 404, (method, path, await resp.text())
    listing = await (await dclient.get("/api/v1/deployments", headers=other)).json()
    assert listing["total"] == 0
