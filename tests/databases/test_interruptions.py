"""Cancellation is an input: a create cut short by a DELETE or by a shutdown leaves no container
that no row owns, and the next start finishes what was accepted. No engine: a 503."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from dployr.app import create_app
from dployr.keys import DB
from dployr.store import databases as store
from tests.conftest import login, register
from tests.databases.conftest import (
    Client,
    create_database,
    database_container,
    db_config,
    volume_exists,
    wait_status,
)
from tests.docker.conftest import agent_containers


async def test_a_delete_during_the_create_leaves_nothing(
    dbclient: Client, auth: dict[str, str], data_dir: Path
) -> None:
    for pause in (0, 0.3, 1.0):  # the cancel lands at different points of the create
        created = await create_database(dbclient, auth, name="brief", engine="mariadb")
        await asyncio.sleep(pause)
        resp = await dbclient.delete(f"/api/v1/databases/{created['id']}", headers=auth)
        assert resp.status == 204, await resp.text()
        assert await database_container(data_dir, created["id"]) is None
        assert not await volume_exists(created["volume"])
    assert await asyncio.to_thread(agent_containers, data_dir) == []


async def test_a_shutdown_during_the_create_is_finished_at_the_next_start(
    aiohttp_client: Any, engine_images: None, data_dir: Path
) -> None:
    first = await aiohttp_client(create_app(db_config(data_dir)))
    await register(first)
    auth = {"Authorization": f"Bearer {(await login(first))['access_token']}"}
    created = await create_database(first, auth, name="late", engine="postgres")
    await asyncio.sleep(0.2)
    await first.close()  # SIGTERM: the create's task is cancelled
    containers = await asyncio.to_thread(agent_containers, data_dir)
    assert len(containers) <= 1  # made and kept for the row, or not made at all

    second = await aiohttp_client(create_app(db_config(data_dir)))
    auth = {"Authorization": f"Bearer {(await login(second))['access_token']}"}
    done = await wait_status(second, auth, created["id"])
    assert done["status"] == "running", done
    assert len(await asyncio.to_thread(agent_containers, data_dir)) == 1
    row = await store.get_database(second.app[DB], created["id"], None)  # type: ignore[arg-type]
    short = await database_container(data_dir, created["id"])
    assert row is not None and short is not None and (row.container_id or "").startswith(short)


async def test_no_engine_is_a_503_naming_why_and_makes_nothing(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    config = db_config(
        tmp_path / "data", runtime={"docker_host": "unix:///nonexistent/docker.sock"}
    )
    client = await aiohttp_client(create_app(config))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    resp = await client.post(
        "/api/v1/databases", json={"name": "x", "engine": "redis"}, headers=auth
    )
    assert resp.status == 503, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "unavailable" and "nonexistent" in error["details"]["runtime"]
    listed = await (await client.get("/api/v1/databases", headers=auth)).json()
    assert listed["total"] == 0
