"""Reconcile managed databases with the engine: at start, when a late engine comes up, and
every round of the scheduler's watch. A missing container is made again from its row and its
volume (the data is there), a stopped one is started, a `creating` row is finished or failed."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from dployr.databases import backups
from dployr.databases.links import refresh_links
from dployr.databases.manager import Databases
from dployr.errors import DployrError
from dployr.store import database_backups as backup_store
from dployr.store import databases as store
from dployr.store.databases import ManagedDatabase

_LOGGER = logging.getLogger(__name__)
ENGINE_POLL_SECONDS = 2.0


async def reconcile_at_start(databases: Databases) -> None:
    """Backups a stop interrupted end `failed`; the databases are reconciled as soon as the
    engine answers (now, or when a late engine comes up)."""
    for backup in await backup_store.running_backups(databases.db):
        record = await store.get_database(databases.db, backup.database_id, None)
        if record is None:
            continue
        reason = "interrupted: the daemon stopped during the backup"
        await backup_store.finish_backup(
            databases.db,
            backup.id,
            record.owner_id,
            {"status": "failed", "error": reason},
            (
                "backup.failed",
                {"database_id": record.id, "name": record.name, "engine": record.engine,
                 "backup_id": backup.id, "trigger": backup.trigger, "error": reason},
            ),
        )  # fmt: skip
    for path in await asyncio.to_thread(backups.sweep_partials, databases.config.backup_path):
        _LOGGER.info("removed %s: a dump the last run did not finish", path)
    while (problem := await databases.docker.problem()) is not None:
        _LOGGER.debug("databases wait for the Docker engine: %s", problem)
        await asyncio.sleep(ENGINE_POLL_SECONDS)  # polling: the engine sends no signal
    await reconcile(databases)


async def reconcile(databases: Databases) -> None:
    """One round over every database that nothing else works on right now (each reconciled in
    the background)."""
    if await databases.docker.problem() is not None:
        return
    try:
        owned = await databases.containers.containers()
    except DployrError as err:
        _LOGGER.warning("could not list the databases' containers: %s", err)
        return
    records = await store.all_databases(databases.db)
    for record in records:
        # Each in a task of its own, tracked like a create: one that takes its time (a start
        # waits up to READY_TIMEOUT for the engine to answer) holds back no other database,
        # and a DELETE of it cancels the wait instead of queueing behind it.
        if not databases.busy(record.id):
            databases.spawn(record.id, _reconcile_one(databases, record.id), "reconcile")
    known = {record.id for record in records}
    for database_id, container in owned.items():
        if database_id not in known:  # its row is gone: the container, never a volume
            _LOGGER.info("removing the container of deleted database %s", database_id)
            await databases.docker.stop(container, grace=5)


async def _reconcile_one(databases: Databases, database_id: str) -> None:
    async with databases.lock(database_id):
        fresh = await store.get_database(databases.db, database_id, None)
        if fresh is not None:
            try:
                await _converge(databases, fresh)
            except DployrError as err:
                _LOGGER.error("could not reconcile database %s: %s", fresh.name, err)


async def _converge(databases: Databases, record: ManagedDatabase) -> None:
    if record.status == "failed":
        return  # it stays as it failed, its error shown, until it is deleted
    if record.status == "creating":  # a create cut short by a stop: finished now, or failed
        await databases.bring_up_locked(record, fresh=True)
        return
    container = await databases.container_of(record)
    state = await databases.containers.state(container)
    if state == "missing":
        _LOGGER.warning("database %s has no container: made again from its volume", record.name)
        if not await asyncio.to_thread(port_free, record.host_port):
            port = await databases.free_port()
            _LOGGER.warning("port %s is taken: %s moves to %s", record.host_port, record.name, port)
            moved = await store.update_database(
                databases.db, record.id, {"host_port": port, "container_id": None}
            )
            assert moved is not None
            record = moved
            await refresh_links(databases, record)
        else:
            moved = await store.update_database(databases.db, record.id, {"container_id": None})
            assert moved is not None
            record = moved
    if state != "running" or record.status == "stopped":
        # A `stopped` one running again (started by hand, or by the engine) is checked and
        # shown `running` once it answers.
        await databases.bring_up_locked(record, fresh=False)
    after = await store.get_database(databases.db, record.id, None)
    if after is not None and after.status == "restoring":
        reason = "a restore was interrupted by a stop of the daemon: restore again"
        await store.update_database(databases.db, record.id, {"status": "running", "error": reason})


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return False
            raise
    return True
