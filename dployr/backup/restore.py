"""Restore a data dir from a backup archive: checked, staged, migrated, then moved into place."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dployr.backup.archive import (
    AGENT_ID,
    DB_NAME,
    SECRETS,
    BackupError,
    Manifest,
    fsync_dir,
    schema_version,
    unpack_archive,
)
from dployr.datadir import DataDirLock
from dployr.store.db import Database, MigrationError, bundled_migrations

# What a restore replaces, the database's companions with it (a crash leaves committed data in
# the -wal file): anything there under these names is moved aside, never deleted. In the order
# they are put in place: the keys before the database (see _install).
REPLACED = (
    SECRETS,
    AGENT_ID,
    f"{DB_NAME}-wal",
    f"{DB_NAME}-shm",
    f"{DB_NAME}-journal",
    DB_NAME,
)
STAGING_PREFIX = ".restore-"  # the 0700 folder inside the data dir the archive unpacks into
# What counts as "data" in a database already there: what an owner made.
_HELD = {
    "users": "SELECT COUNT(*) FROM users",
    "projects": "SELECT COUNT(*) FROM projects",
    "services": "SELECT COUNT(*) FROM services",
}


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    schema: int  # after the migrations this dployr applied
    keys: tuple[str, ...]  # the key files now in secrets/
    aside: Path | None  # where the files that were there went


def restore(archive: Path, data_path: Path, *, force: bool = False) -> Restored:
    """Bring `data_path` back from `archive`. Refused (BackupError, or DataDirBusy from the
    lock) while a daemon runs on it, when it holds data and `force` is not set, and for any
    archive that fails a check: the data dir is then left as it was."""
    if not archive.is_file():
        raise BackupError(f"{archive} is not a file")
    data_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # No one else may list or write it; o+x stays where the systemd target gave it (its apps'
    # users traverse the data dir to reach their release dirs).
    data_path.chmod(data_path.stat().st_mode & 0o711)
    lock = DataDirLock.acquire(data_path, "dployr restore")
    try:
        held = held_data(data_path / DB_NAME)
        if held and not force:
            raise BackupError(
                f"{data_path} already holds data ({held}); pass --force to restore anyway "
                f"(the files there are moved to {data_path}/pre-restore-<time>/, not deleted)"
            )
        for stale in data_path.glob(f"{STAGING_PREFIX}*"):  # left by a restore that crashed
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=data_path))
        try:
            manifest = unpack_archive(archive, staging)
            _check_agent_id(staging / AGENT_ID, manifest)
            schema = _check_and_migrate(staging / DB_NAME, manifest)
            present = [n for n in reversed(REPLACED) if os.path.lexists(data_path / n)]
            aside = _move_aside(data_path, present) if present else None
            keys = _install(staging, data_path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        lock.release()
    return Restored(manifest, schema, keys, aside)


def held_data(db: Path) -> str | None:
    """What an owner made in the database at `db` ("2 users, 1 services"), None when it is
    absent or empty; a database that cannot be read is taken to hold data."""
    if not os.path.lexists(db):
        return None
    # After a clean stop the file is whole: read it as immutable, which leaves no -wal or -shm
    # behind. After a crash the -wal holds committed data, and is read with it.
    clean = not os.path.lexists(f"{db}-wal")
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro{'&immutable=1' if clean else ''}", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            counts = {t: conn.execute(q).fetchone()[0] for t, q in _HELD.items() if t in tables}
        finally:
            conn.close()
    except sqlite3.Error as err:
        return f"a database that cannot be read: {err}"
    held = ", ".join(f"{n} {t}" for t, n in counts.items() if n)
    return held or None


def _check_agent_id(path: Path, manifest: Manifest) -> None:
    found = path.read_text("ascii").strip() if path.exists() else None
    if found != manifest.agent_id:
        raise BackupError(f"{AGENT_ID} does not match the manifest: the archive is damaged")


def _check_and_migrate(db: Path, manifest: Manifest) -> int:
    """The copy is whole, and at this dployr's schema (migrations run here, on the staged
    copy, so that one that fails leaves the data dir untouched)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.Error as err:
        problems = [str(err)]
    finally:
        conn.close()
    if problems != ["ok"]:
        raise BackupError(f"the archive's database is damaged: {'; '.join(problems[:5])}")
    known = max(m.version for m in bundled_migrations())
    found = schema_version(db)
    if found > known:
        raise BackupError(
            f"the backup is at schema version {found} (dployr {manifest.dployr_version}); this "
            f"dployr knows up to {known}: install a dployr at least as new, then restore"
        )
    try:
        return asyncio.run(_migrate(db))
    except MigrationError as err:
        raise BackupError(f"the backup could not be brought to this schema: {err}") from None


async def _migrate(path: Path) -> int:
    """Apply what is pending, each migration in its own transaction; the schema reached."""
    db = await Database.open(path)
    try:
        return int(await db.fetchval("SELECT MAX(version) FROM schema_migrations"))
    finally:
        await db.close()  # and checkpoint: one file again


def _move_aside(data_path: Path, names: list[str]) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = data_path / f"pre-restore-{stamp}"
    suffix = 1
    while os.path.lexists(aside):
        suffix += 1
        aside = data_path / f"pre-restore-{stamp}-{suffix}"
    aside.mkdir(mode=0o700)
    for name in names:
        (data_path / name).rename(aside / name)
    fsync_dir(data_path)
    return aside


def _install(staging: Path, data_path: Path) -> tuple[str, ...]:
    """Modes first (files 0600, folders 0700, owned like the data dir when root restores for a
    daemon that runs as another user), then renames: the keys before the database, so that a
    crash in between leaves no database whose keys are missing (a second restore then needs
    no --force)."""
    owner = data_path.stat()
    chown = os.geteuid() == 0 and owner.st_uid != 0
    secrets = staging / SECRETS
    keys = tuple(sorted(p.name for p in secrets.iterdir())) if secrets.is_dir() else ()
    paths = [staging / n for n in REPLACED if (staging / n).exists()]
    paths += [secrets / k for k in keys]
    for path in paths:
        path.chmod(0o700 if path.is_dir() else 0o600)
        if chown:
            os.chown(path, owner.st_uid, owner.st_gid)
    for name in REPLACED:
        if (staging / name).exists():
            (staging / name).rename(data_path / name)
    fsync_dir(data_path)
    return keys
