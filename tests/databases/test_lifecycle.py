"""Create, read, list and delete managed databases through the API, on the real engine."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from pathlib import Path
from typing import Any

from dployr.app import create_app
from dployr.config import RuntimeImage
from dployr.keys import DB
from dployr.store.events import events_after
from tests.conftest import login, register, user_headers
from tests.databases.conftest import (
    Client,
    create_database,
    database_container,
    db_config,
    docker,
    run_in,
    running_database,
    sql_client,
    volume_exists,
    wait_status,
)
from tests.docker.conftest import agent_containers


async def test_a_postgres_database_runs_and_answers_with_its_password(
    dbclient: Client, auth: dict[str, str], data_dir: Path
) -> None:
    created = await create_database(dbclient, auth, name="main-db", engine="postgres")
    password = created["password"]
    assert created["status"] == "creating" and created["id"].startswith("db_")
    assert len(password) >= 32 and created["version"] == "15"
    assert created["username"] == created["database"] == "main_db"
    assert created["connection_url"] == (
        f"postgresql://main_db:********@127.0.0.1:{created['host_port']}/main_db"
    )
    found = await wait_status(dbclient, auth, created["id"])
    assert found["status"] == "running", found
    assert "password" not in found and password not in str(found)
    listed = await (await dbclient.get("/api/v1/databases", headers=auth)).json()
    assert [d["id"] for d in listed["items"]] == [created["id"]] and listed["total"] == 1
    assert password not in str(listed)
    container = await database_container(data_dir, created["id"])
    assert container is not None
    env, argv = sql_client(found, password)
    assert (await run_in(container, env, *argv, "SELECT 40 + 2")).strip() == "42"
    # Published on loopback only.
    ports = (
        await asyncio.to_thread(
            subprocess.run, ["docker", "port", container], capture_output=True, text=True
        )
    ).stdout
    assert f"127.0.0.1:{created['host_port']}" in ports and "0.0.0.0" not in ports  # noqa: S104
    # database.created went through the event log, without the password.
    events = await events_after(dbclient.app[DB], 0, None)  # type: ignore[arg-type]
    made = [e for e in events if e.type == "database.created"]
    assert made and made[0].data["database_id"] == created["id"]
    assert all(password not in str(e.data) for e in events)


async def test_bad_input_is_a_400_or_409_with_no_side_effect(
    dbclient: Client, auth: dict[str, str], data_dir: Path
) -> None:
    for body, field in [
        ({"name": "x", "engine": "mongodb"}, "engine"),
        ({"name": "Bad_Name", "engine": "postgres"}, "name"),
        ({"name": "-x", "engine": "postgres"}, "name"),
        ({"name": "x" * 64, "engine": "postgres"}, "name"),
        ({"name": "x", "engine": "redis", "version": "7;rm"}, "version"),
        ({"name": "x", "engine": "redis", "version": ""}, "version"),
        ({"name": "x", "engine": "redis", "backup_schedule": "every day"}, "backup_schedule"),
        ({"name": "x", "engine": "redis", "keep_backups": 0}, "keep_backups"),
        ({"name": "x", "engine": "redis", "project_id": "prj_nope"}, "project_id"),
        ({"name": "x", "engine": "redis", "extra": 1}, "extra"),
    ]:
        resp = await dbclient.post("/api/v1/databases", json=body, headers=auth)
        assert resp.status == 400, (body, await resp.text())
        error = (await resp.json())["error"]
        assert error["code"] == "validation_error" and error["details"]["field"] == field, error
    listed = await (await dbclient.get("/api/v1/databases", headers=auth)).json()
    assert listed["total"] == 0
    assert await asyncio.to_thread(agent_containers, data_dir) == []
    created = await create_database(dbclient, auth, name="cache", engine="redis")
    again = await dbclient.post(
        "/api/v1/databases", json={"name": "cache", "engine": "postgres"}, headers=auth
    )
    assert again.status == 409, await again.text()
    assert (await again.json())["error"]["details"]["field"] == "name"
    listed = await (await dbclient.get("/api/v1/databases", headers=auth)).json()
    assert [d["id"] for d in listed["items"]] == [created["id"]]
    await wait_status(dbclient, auth, created["id"])


async def test_owners_see_only_their_own_and_admins_see_all(
    dbclient: Client, auth: dict[str, str]
) -> None:
    other = await user_headers(dbclient, auth, "bob@example.com")
    created = await create_database(dbclient, other, name="bobs", engine="redis")
    # The same name is another owner's: no conflict.
    mine = await create_database(dbclient, auth, name="bobs", engine="redis")
    theirs = await (await dbclient.get("/api/v1/databases", headers=other)).json()
    assert [d["id"] for d in theirs["items"]] == [created["id"]]
    for method, path in [
        ("GET", f"/api/v1/databases/{mine['id']}"),
        ("DELETE", f"/api/v1/databases/{mine['id']}"),
        ("GET", f"/api/v1/databases/{mine['id']}/backups"),
        ("POST", f"/api/v1/databases/{mine['id']}/backups"),
    ]:
        resp = await dbclient.request(method, path, headers=other)
        assert resp.status == 404, (method, path, await resp.text())
        assert (await resp.json())["error"]["code"] == "not_found"
    every = await (await dbclient.get("/api/v1/databases", headers=auth)).json()
    assert {d["id"] for d in every["items"]} == {created["id"], mine["id"]}
    only = await dbclient.get("/api/v1/databases?engine=postgres", headers=auth)
    assert (await only.json())["total"] == 0
    for database in (created, mine):
        await wait_status(dbclient, auth, database["id"])


async def test_delete_removes_container_and_volume_unless_keep_data(
    dbclient: Client, auth: dict[str, str], data_dir: Path
) -> None:
    gone, _ = await running_database(dbclient, auth, name="gone", engine="redis")
    kept, _ = await running_database(dbclient, auth, name="kept", engine="redis")
    assert await database_container(data_dir, gone["id"]) and await volume_exists(gone["volume"])
    resp = await dbclient.delete(f"/api/v1/databases/{gone['id']}", headers=auth)
    assert resp.status == 204, await resp.text()
    assert await database_container(data_dir, gone["id"]) is None
    assert not await volume_exists(gone["volume"])
    resp = await dbclient.delete(f"/api/v1/databases/{kept['id']}?keep_data=true", headers=auth)
    assert resp.status == 204, await resp.text()
    assert await database_container(data_dir, kept["id"]) is None
    assert await volume_exists(kept["volume"])
    await docker("volume", "rm", kept["volume"])
    for database in (gone, kept):
        resp = await dbclient.get(f"/api/v1/databases/{database['id']}", headers=auth)
        assert resp.status == 404


async def test_an_image_that_cannot_run_fails_the_database_and_leaves_nothing(
    aiohttp_client: Any, engine_images: None, data_dir: Path
) -> None:
    # An image that is here (so the create is accepted) but is no database server: its
    # container exits at once.
    images = {"postgres": RuntimeImage("busybox:{version}")}
    config = dataclasses.replace(db_config(data_dir), database_images=images)
    dbclient = await aiohttp_client(create_app(config))
    await register(dbclient)
    auth = {"Authorization": f"Bearer {(await login(dbclient))['access_token']}"}
    created = await create_database(
        dbclient, auth, name="nope", engine="postgres", version="stable"
    )
    found = await wait_status(dbclient, auth, created["id"])
    assert found["status"] == "failed" and found["error"], found
    assert await database_container(data_dir, created["id"]) is None
    assert not await volume_exists(created["volume"])
    events = await events_after(dbclient.app[DB], 0, None)  # type: ignore[arg-type]
    assert [e.data["database_id"] for e in events if e.type == "database.failed"] == [created["id"]]


async def test_a_project_with_a_database_is_not_deleted(
    dbclient: Client, auth: dict[str, str]
) -> None:
    resp = await dbclient.post("/api/v1/projects", json={"name": "shop"}, headers=auth)
    project = await resp.json()
    record, _ = await running_database(
        dbclient, auth, name="orders", engine="redis", project_id=project["id"]
    )
    assert record["project_id"] == project["id"]
    only = await dbclient.get(f"/api/v1/databases?project_id={project['id']}", headers=auth)
    assert [d["id"] for d in (await only.json())["items"]] == [record["id"]]
    for query in ("", "?force=true"):
        resp = await dbclient.delete(f"/api/v1/projects/{project['id']}{query}", headers=auth)
        assert resp.status == 409, await resp.text()
        assert (await resp.json())["error"]["details"]["databases"] == [record["id"]]
    resp = await dbclient.delete(f"/api/v1/databases/{record['id']}", headers=auth)
    assert resp.status == 204
    resp = await dbclient.delete(f"/api/v1/projects/{project['id']}", headers=auth)
    assert resp.status == 204, await resp.text()


async def test_kept_data_is_attached_again_by_the_same_name(
    dbclient: Client, auth: dict[str, str], data_dir: Path
) -> None:
    first, password = await running_database(dbclient, auth, name="notes", engine="postgres")
    container = await database_container(data_dir, first["id"])
    assert container is not None
    env, argv = sql_client(first, password)
    await run_in(container, env, *argv, "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('mine')")
    resp = await dbclient.delete(f"/api/v1/databases/{first['id']}?keep_data=true", headers=auth)
    assert resp.status == 204, await resp.text()
    # Another engine under that name would not read the data: refused, nothing made.
    resp = await dbclient.post(
        "/api/v1/databases", json={"name": "notes", "engine": "mariadb"}, headers=auth
    )
    assert resp.status == 409, await resp.text()
    assert (await resp.json())["error"]["details"]["field"] == "name"
    created = await create_database(dbclient, auth, name="notes", engine="postgres")
    assert created["volume"] == first["volume"] and created["password"] == password
    second = await wait_status(dbclient, auth, created["id"])
    assert second["status"] == "running", second
    container = await database_container(data_dir, created["id"])
    assert container is not None
    assert (await run_in(container, env, *argv, "SELECT v FROM t")).strip() == "mine"
    # Deleted without keep_data, the data goes for good: the next one starts empty.
    resp = await dbclient.delete(f"/api/v1/databases/{created['id']}", headers=auth)
    assert resp.status == 204
    assert not await volume_exists(first["volume"])
    third = await create_database(dbclient, auth, name="notes", engine="mariadb")
    assert third["volume"] != first["volume"] and third["password"] != password
    assert (await wait_status(dbclient, auth, third["id"]))["status"] == "running"
