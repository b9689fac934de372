"""Backups of managed databases: logical dumps on demand and on schedule, written 0600 under
<backup_path>/<database id>/ (dirs 0700), the newest `keep_backups` good ones kept; restore."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from dployr.databases.engines import ENGINE
from dployr.databases.manager import Databases
from dployr.errors import DployrError, InvalidState, ValidationError
from dployr.ids import now_iso, utcnow
from dployr.store import database_backups as backup_store
from dployr.store import databases as store
from dployr.store.database_backups import Backup
from dployr.store.databases import ManagedDatabase
from dployr.tasks import run_to_end

_LOGGER = logging.getLogger(__name__)
# A backup runs while the engine serves; a restore while it is being restored (the container
# keeps running: the dump is loaded through the engine's own client).
BACKUP_STATES = ("running", "restoring")


def backup_dir(databases: Databases, database_id: str) -> Path:
    return databases.config.backup_path / database_id


def _make_dir(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)  # whatever the umask made of it


async def take_backup(databases: Databases, record: ManagedDatabase, trigger: str) -> Backup:
    """Record a backup (`running`) and take it in the background, after whatever else runs on
    the database; a database that does not run → 409."""
    if record.status != "running":
        raise InvalidState(f"Database {record.name} is {record.status}: it cannot be backed up")
    backup = await backup_store.insert_backup(databases.db, record.id, trigger)
    databases.spawn(record.id, run_backup(databases, record.id, backup), "backup")
    return backup


async def scheduled_backup(databases: Databases, database_id: str) -> None:
    """The scheduler's job for one database: a backup when it runs (else none, and no row)."""
    record = await store.get_database(databases.db, database_id, None)
    if record is None or record.status != "running":
        _LOGGER.info("scheduled backup of %s skipped: not running", database_id)
        return
    await take_backup(databases, record, "schedule")


async def run_backup(databases: Databases, database_id: str, backup: Backup) -> None:
    async with databases.lock(database_id):
        record = await store.get_database(databases.db, database_id, None)
        if record is None:
            return  # deleted meanwhile: its backup rows went with it
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        dest = backup_dir(databases, record.id) / (
            f"{stamp}-{backup.id}{ENGINE[record.engine].backup_suffix}"
        )
        try:
            if record.status not in BACKUP_STATES:
                raise InvalidState(f"the database is {record.status}")
            container = await databases.container_of(record)
            if container is None:
                raise InvalidState("the database has no container")
            await asyncio.to_thread(_make_dir, dest.parent)
            size = await databases.containers.backup(container, databases.spec_of(record), dest)
        except asyncio.CancelledError:
            await run_to_end(_failed(databases, record, backup, dest, "cancelled"))
            raise
        except (DployrError, OSError) as err:
            await _failed(databases, record, backup, dest, _reason(err))
            return
        done = await backup_store.finish_backup(
            databases.db,
            backup.id,
            record.owner_id,
            {"status": "succeeded", "file": dest.name, "size_bytes": size},
            ("backup.succeeded", {**_event_data(record, backup), "size_bytes": size}),
        )
        _LOGGER.info("backup %s of %s: %s bytes", backup.id, record.name, size)
        if done is not None:
            await prune(databases, record)


async def _failed(
    databases: Databases, record: ManagedDatabase, backup: Backup, dest: Path, error: str
) -> None:
    """A failed backup leaves no file of its own and touches no older one."""
    await asyncio.to_thread(dest.unlink, missing_ok=True)
    await backup_store.finish_backup(
        databases.db,
        backup.id,
        record.owner_id,
        {"status": "failed", "error": error},
        ("backup.failed", {**_event_data(record, backup), "error": error}),
    )
    _LOGGER.error("backup %s of %s failed: %s", backup.id, record.name, error)


def _reason(err: Exception) -> str:
    return err.message if isinstance(err, DployrError) else f"{type(err).__name__}: {err}"


def _event_data(record: ManagedDatabase, backup: Backup) -> dict[str, object]:
    return {
        "database_id": record.id,
        "name": record.name,
        "engine": record.engine,
        "backup_id": backup.id,
        "trigger": backup.trigger,
        "at": now_iso(),
    }


async def prune(databases: Databases, record: ManagedDatabase) -> None:
    """Keep the newest `keep_backups` good backups (files and rows): only ever after a new good
    one, so a failed backup never costs an older good one."""
    good = await backup_store.succeeded_backups(databases.db, record.id)
    doomed = good[record.keep_backups :]
    for backup in doomed:
        if backup.file:
            path = backup_dir(databases, record.id) / backup.file
            await asyncio.to_thread(path.unlink, missing_ok=True)
    # Failed ones have no file: only their newest keep_backups rows stay, so a schedule that
    # keeps failing does not grow the list for ever.
    failed = await backup_store.succeeded_backups(databases.db, record.id, "failed")
    await backup_store.delete_backups(
        databases.db, [b.id for b in doomed] + [b.id for b in failed[record.keep_backups :]]
    )
    if doomed:
        _LOGGER.info("%s: %d old backup(s) removed", record.name, len(doomed))


def sweep_partials(root: Path) -> list[Path]:
    """Remove the half-written dumps a killed daemon left (`.<file>.<hex>.partial`, see
    DatabaseContainers.backup) under the backup dir; the paths removed. Blocking: run it in a
    thread."""
    removed = []
    for path in root.glob("db_*/.*.partial"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# -- restore ------------------------------------------------------------------------------------


async def restore(databases: Databases, record: ManagedDatabase, backup_id: str) -> ManagedDatabase:
    """Mark the database `restoring` and load the backup into it in the background; back to
    `running` when done (`error` says when it failed)."""
    backup = await backup_store.get_backup(databases.db, backup_id)
    if backup is None or backup.database_id != record.id:
        raise ValidationError("backup_id", "is not a backup of this database")
    if backup.status != "succeeded" or not backup.file:
        raise ValidationError("backup_id", f"is a {backup.status} backup: nothing to restore")
    if record.status != "running":
        raise InvalidState(f"Database {record.name} is {record.status}: it cannot be restored")
    restoring = await store.update_database(
        databases.db, record.id, {"status": "restoring", "error": None}
    )
    if restoring is None:
        raise InvalidState(f"Database {record.name} was deleted")
    databases.spawn(record.id, _run_restore(databases, record.id, backup), "restore")
    return restoring


async def _run_restore(databases: Databases, database_id: str, backup: Backup) -> None:
    async with databases.lock(database_id):
        record = await store.get_database(databases.db, database_id, None)
        if record is None:
            return
        assert backup.file is not None
        source = backup_dir(databases, record.id) / backup.file
        error = None
        try:
            container = await databases.container_of(record)
            if container is None:
                raise InvalidState("the database has no container")
            await databases.containers.restore(container, databases.spec_of(record), source)
        except (DployrError, OSError) as err:
            error = f"the restore from {backup.id} failed: {_reason(err)}"
            _LOGGER.error("database %s: %s", record.name, error)
        else:
            _LOGGER.info("database %s restored from %s", record.name, backup.id)
        await store.update_database(databases.db, record.id, {"status": "running", "error": error})
