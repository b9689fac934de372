"""What the API refuses up front, with no side effect: input a database's first start would fail
on, an account that still owns databases, a link over a variable the user set, a volume moved
to another target; and what a killed backup leaves is swept at the next start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from dployr.databases.backups import sweep_partials
from tests.conftest import user_headers
from tests.databases.conftest import Client, create_database, running_database
from tests.databases.test_links import busybox_app, deploy


async def _refused(
    client: Client, headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    resp = await client.post("/api/v1/databases", json=body, headers=headers)
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["details"]["field"] == field, (body, error)


async def test_input_a_first_start_would_fail_on_is_refused_with_no_side_effect(
    dbclient: Client, auth: dict[str, str]
) -> None:
    cases = [
        # No such image here, and no registry gives it: a 400 now, not `failed` later.
        ({"name": "a", "engine": "postgres", "version": "99"}, "version"),
        # Names the engines keep for themselves.
        ({"name": "pg-stat", "engine": "postgres"}, "name"),
        ({"name": "template1", "engine": "postgres"}, "name"),
        ({"name": "root", "engine": "mariadb"}, "name"),
        ({"name": "mysql", "engine": "mariadb"}, "name"),
        # A schedule that never fires would silently take no backup.
        ({"name": "b", "engine": "redis", "backup_schedule": "0 3 31 2 *"}, "backup_schedule"),
    ]
    for body, field in cases:
        await _refused(dbclient, auth, body, field)
    listed = await (await dbclient.get("/api/v1/databases", headers=auth)).json()
    assert listed["items"] == []


async def test_an_account_with_databases_is_not_deleted(
    dbclient: Client, auth: dict[str, str]
) -> None:
    bob = await user_headers(dbclient, auth, "bob@example.com")
    made = await create_database(dbclient, bob, name="cache", engine="redis")
    resp = await dbclient.delete("/api/v1/users/me", headers=bob)
    error = (await resp.json())["error"]
    assert resp.status == 409 and error["details"]["databases"] == 1, error
    assert (await dbclient.get(f"/api/v1/databases/{made['id']}", headers=bob)).status == 200
    resp = await dbclient.delete(f"/api/v1/databases/{made['id']}", headers=bob)
    assert resp.status in (200, 202, 204), await resp.text()
    assert (await dbclient.delete("/api/v1/users/me", headers=bob)).status == 204


async def test_a_link_and_the_services_own_variables_never_overwrite_each_other(
    dbclient: Client, auth: dict[str, str]
) -> None:
    database, _ = await running_database(dbclient, auth, name="kv", engine="redis")
    service = await deploy(dbclient, auth, busybox_app("web"))
    env_path = f"/api/v1/services/{service['id']}/env"
    resp = await dbclient.post(env_path, json={"key": "MINE", "value": "x"}, headers=auth)
    assert resp.status == 200
    links = f"/api/v1/databases/{database['id']}/links"

    # A link over the user's own variable is refused; the variable keeps its value.
    body = {"service_id": service["id"], "env": "MINE"}
    resp = await dbclient.post(links, json=body, headers=auth)
    error = (await resp.json())["error"]
    assert resp.status == 409 and error["details"]["field"] == "env", error
    env = await (await dbclient.get(env_path, headers=auth)).json()
    assert {v["key"]: v["value"] for v in env["env"]} == {"MINE": "x"}

    # The link's own variable cannot be overwritten through the env API...
    resp = await dbclient.post(links, json={"service_id": service["id"]}, headers=auth)
    assert resp.status in (200, 201), await resp.text()
    body = {"key": "DATABASE_URL", "value": "redis://elsewhere"}
    resp = await dbclient.post(env_path, json=body, headers=auth)
    error = (await resp.json())["error"]
    assert resp.status == 409 and error["details"]["field"] == "key", error
    # ...and deleting it ends the link: the service no longer has the URL.
    assert (await dbclient.delete(f"{env_path}/DATABASE_URL", headers=auth)).status == 204
    found = await (await dbclient.get(f"/api/v1/databases/{database['id']}", headers=auth)).json()
    assert found["linked_service_ids"] == []


async def test_a_service_with_volumes_does_not_move_to_another_target(
    dbclient: Client, auth: dict[str, str]
) -> None:
    body = {**busybox_app("notes"), "volumes": [{"name": "data", "path": "/data"}]}
    await deploy(dbclient, auth, body)
    moved = {**body, "source": "local", "runtime": "static", "path": "/nonexistent"}
    moved.update(target="process", image=None)
    resp = await dbclient.post("/api/v1/deployments", json=moved, headers=auth)
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["details"]["field"] == "target", error
    listed = await (await dbclient.get("/api/v1/deployments", headers=auth)).json()
    assert listed["total"] == 1


async def test_a_killed_backups_half_file_is_swept(tmp_path: Path) -> None:
    good = tmp_path / "db_a" / "20261201T030000Z-bak_a.dump"
    half = tmp_path / "db_a" / ".20261202T030000Z-bak_b.dump.1a2b3c4d.partial"
    await asyncio.to_thread(good.parent.mkdir)
    for path in (good, half):
        await asyncio.to_thread(path.write_bytes, b"x")
    assert await asyncio.to_thread(sweep_partials, tmp_path) == [half]
    assert await asyncio.to_thread(good.exists)
    assert not await asyncio.to_thread(half.exists)
