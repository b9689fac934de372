"""Backups on the real engines: on demand and on schedule, retention, a failure that keeps the
older good one, restore, and the events that webhooks carry."""

from __future__ import annotations

import asyncio
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dployr.keys import CONFIG, DB, SCHEDULER
from dployr.scheduler import backup_job_id
from dployr.store.events import events_after
from tests.databases.conftest import (
    Client,
    database_container,
    docker,
    run_in,
    running_database,
    sql_client,
    wait_backup,
    wait_status,
)
from tests.webhooks.conftest import Receiver, eventually, receiver

__all__ = ["receiver"]  # the webhook receiver fixture of tests/webhooks


async def write(container: str, record: dict[str, Any], password: str, value: str) -> None:
    """Set the database's one value (a row, a key) with its own client."""
    env, argv = sql_client(record, password)
    if record["engine"] == "redis":
        await run_in(container, env, *argv, "SET", "v", value)
    else:
        await run_in(container, env, *argv, "CREATE TABLE IF NOT EXISTS t (v TEXT)")
        await run_in(container, env, *argv, f"DELETE FROM t; INSERT INTO t VALUES ('{value}')")  # noqa: S608


async def read(container: str, record: dict[str, Any], password: str) -> str:
    env, argv = sql_client(record, password)
    if record["engine"] == "redis":
        return (await run_in(container, env, *argv, "GET", "v")).strip()
    return (await run_in(container, env, *argv, "SELECT v FROM t")).strip()


async def backup_now(client: Client, headers: dict[str, str], database_id: str) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/databases/{database_id}/backups", headers=headers)
    assert resp.status == 202, await resp.text()
    started = await resp.json()
    assert started["status"] == "running" and started["id"].startswith("bak_")
    return await wait_backup(client, headers, database_id, started["id"])


@pytest.mark.parametrize("engine", ["postgres", "redis", "mariadb"])
async def test_backup_change_restore_brings_the_old_data_back(
    dbclient: Client, auth: dict[str, str], data_dir: Path, engine: str, receiver: Receiver
) -> None:
    hook = await dbclient.post(
        "/api/v1/webhooks", json={"url": receiver.url, "events": ["backup.succeeded"]}, headers=auth
    )
    assert hook.status == 201, await hook.text()
    record, password = await running_database(dbclient, auth, name="data", engine=engine)
    container = await database_container(data_dir, record["id"])
    assert container is not None
    await write(container, record, password, "old")
    backup = await backup_now(dbclient, auth, record["id"])
    assert backup["status"] == "succeeded", backup
    assert backup["size_bytes"] > 0 and backup["finished_at"]
    folder = dbclient.app[CONFIG].backup_path / record["id"]  # type: ignore[index]
    files = await asyncio.to_thread(lambda: sorted(folder.iterdir()))
    assert len(files) == 1 and backup["id"] in files[0].name
    assert stat.S_IMODE((await asyncio.to_thread(folder.stat)).st_mode) == 0o700
    assert stat.S_IMODE((await asyncio.to_thread(files[0].stat)).st_mode) == 0o600
    assert (await asyncio.to_thread(files[0].stat)).st_size == backup["size_bytes"]

    await write(container, record, password, "new")
    assert await read(container, record, password) == "new"
    resp = await dbclient.post(
        f"/api/v1/databases/{record['id']}/restore", json={"backup_id": backup["id"]}, headers=auth
    )
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["status"] == "restoring"
    restored = await wait_status(dbclient, auth, record["id"], ("running", "failed"))
    assert restored["status"] == "running" and restored["error"] is None, restored
    container = await database_container(data_dir, record["id"])
    assert container is not None
    assert await read(container, record, password) == "old"

    # backup.succeeded went through the event log and out to the webhook.
    async def delivered() -> list[Any]:
        return [r for r in receiver.requests if r.headers.get("X-Dployr-Event")]

    sent = await eventually(delivered)
    assert sent[0].headers["X-Dployr-Event"] == "backup.succeeded"
    assert backup["id"].encode() in sent[0].body and password.encode() not in sent[0].body


async def test_restore_refusals(dbclient: Client, auth: dict[str, str]) -> None:
    record, _ = await running_database(dbclient, auth, name="r", engine="redis")
    other, _ = await running_database(dbclient, auth, name="s", engine="redis")
    theirs = await backup_now(dbclient, auth, other["id"])
    for body, field in [({"backup_id": "bak_nope"}, "backup_id"), ({}, "backup_id"),
                        ({"backup_id": theirs["id"]}, "backup_id")]:  # fmt: skip
        resp = await dbclient.post(
            f"/api/v1/databases/{record['id']}/restore", json=body, headers=auth
        )
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["error"]["details"]["field"] == field
    found = await (await dbclient.get(f"/api/v1/databases/{record['id']}", headers=auth)).json()
    assert found["status"] == "running"


async def test_retention_keeps_the_newest_and_a_failure_keeps_the_older_good_one(
    dbclient: Client, auth: dict[str, str], data_dir: Path
) -> None:
    client = dbclient
    record, _ = await running_database(client, auth, name="kept", engine="redis", keep_backups=2)
    assert record["keep_backups"] == 2
    backups_path = f"/api/v1/databases/{record['id']}/backups"
    made = [await backup_now(client, auth, record["id"]) for _ in range(3)]
    assert [b["status"] for b in made] == ["succeeded"] * 3
    # The prune follows the newest one's success: until it did, the list may still hold three.
    deadline = time.monotonic() + 20
    while True:
        listed = await (await client.get(backups_path, headers=auth)).json()
        if len(listed["items"]) == 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert [b["id"] for b in listed["items"]] == [made[2]["id"], made[1]["id"]]
    folder = client.app[CONFIG].backup_path / record["id"]  # type: ignore[index]

    def names() -> list[str]:
        return sorted(p.name for p in folder.iterdir())

    assert {n.split("-", 1)[1] for n in await asyncio.to_thread(names)} == {
        f"{b['id']}.rdb" for b in made[1:]
    }
    # A backup of a database whose engine does not answer fails, and costs no older one.
    container = await database_container(data_dir, record["id"])
    assert container is not None
    assert await docker("stop", container) == 0
    failed = await backup_now(client, auth, record["id"])
    assert failed["status"] == "failed" and failed["error"], failed
    assert {n.split("-", 1)[1] for n in await asyncio.to_thread(names)} == {
        f"{b['id']}.rdb" for b in made[1:]
    }
    listed = await (await client.get(backups_path, headers=auth)).json()
    assert [b["status"] for b in listed["items"]] == ["failed", "succeeded", "succeeded"]
    events = await events_after(client.app[DB], 0, None)  # type: ignore[arg-type]
    assert [e.data["backup_id"] for e in events if e.type == "backup.failed"] == [failed["id"]]
    assert len([e for e in events if e.type == "backup.succeeded"]) == 3


async def test_a_scheduled_backup_fires(dbclient: Client, auth: dict[str, str]) -> None:
    record, _ = await running_database(
        dbclient, auth, name="nightly", engine="redis", backup_schedule="30 4 * * *"
    )
    assert record["backup_schedule"] == "30 4 * * *"
    scheduler = dbclient.app[SCHEDULER]  # type: ignore[index]
    job = scheduler.get_job(backup_job_id(record["id"]))
    assert job is not None and job.next_run_time.hour == 4 and job.next_run_time.minute == 30
    job.modify(next_run_time=datetime.now(UTC))  # its time has come

    async def scheduled() -> list[dict[str, Any]]:
        resp = await dbclient.get(f"/api/v1/databases/{record['id']}/backups", headers=auth)
        return [b for b in (await resp.json())["items"] if b["status"] == "succeeded"]

    done = await eventually(scheduled, seconds=120)
    assert done[0]["trigger"] == "schedule"
    # The job goes with its database.
    resp = await dbclient.delete(f"/api/v1/databases/{record['id']}", headers=auth)
    assert resp.status == 204
    assert scheduler.get_job(backup_job_id(record["id"])) is None
    folder = dbclient.app[CONFIG].backup_path / record["id"]  # type: ignore[index]
    assert not await asyncio.to_thread(folder.exists)
