"""Managed databases (SPEC §14): their rows and their links to services (their backups:
store/database_backups.py)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from dployr.crypto import SecretBox
from dployr.errors import Conflict, NotFound, ValidationError
from dployr.ids import new_id, now_iso
from dployr.store import events, services
from dployr.store.db import Database, Row, Transaction
from dployr.store.paging import Page, PageRequest

_COLUMNS = (
    "id, owner_id, project_id, name, engine, version, image, status, error, host_port,"
    " username, database, password_enc, volume, container_id, backup_schedule, keep_backups,"
    " created_at, updated_at"
)
Change = tuple[str, dict[str, Any]]  # an event to append with a change: (type, data)


@dataclass(frozen=True)
class ManagedDatabase:
    id: str
    owner_id: str
    project_id: str
    name: str
    engine: str
    version: str
    image: str
    status: str  # creating | running | stopped | failed | restoring
    error: str | None
    host_port: int
    username: str
    database: str
    password_enc: str
    volume: str
    container_id: str | None
    backup_schedule: str
    keep_backups: int
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: Row) -> ManagedDatabase:
        return cls(*row)


@dataclass(frozen=True)
class NewDatabase:
    owner_id: str
    project_id: str | None  # None: the owner's default project
    name: str
    engine: str
    version: str
    image: str
    host_port: int
    username: str
    database: str
    password: str
    backup_schedule: str
    keep_backups: int
    volume: str | None = None  # None: a new one, named after the database


@dataclass(frozen=True)
class KeptVolume:
    """The volume of a database deleted with keep_data, and the credentials its data knows."""

    engine: str
    volume: str
    username: str
    database: str
    password_enc: str


@dataclass(frozen=True)
class Link:
    database_id: str
    service_id: str
    env: str
    created_at: str


# -- databases ----------------------------------------------------------------------------------


async def insert_database(
    conn: Transaction, new: NewDatabase, project_id: str, box: SecretBox
) -> ManagedDatabase:
    """The row of a new database (`creating`); a name the owner has already → 409."""
    database_id, now = new_id("db"), now_iso()
    try:
        await conn.execute(
            f"INSERT INTO databases ({_COLUMNS}) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, 'creating', NULL, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
            (
                database_id,
                new.owner_id,
                project_id,
                new.name,
                new.engine,
                new.version,
                new.image,
                new.host_port,
                new.username,
                new.database,
                box.encrypt(new.password),
                new.volume or new_volume_name(database_id),
                new.backup_schedule,
                new.keep_backups,
                now,
                now,
            ),
        )
    except sqlite3.IntegrityError as err:
        if "UNIQUE" not in str(err):  # its project was deleted since it was checked
            raise ValidationError("project_id", "no such project") from None
        raise Conflict(
            f"You already have a database named {new.name!r}",
            details={"field": "name", "reason": "already exists"},
        ) from None
    rows = list(
        await conn.execute_fetchall(
            f"SELECT {_COLUMNS} FROM databases WHERE id = ?", (database_id,)
        )
    )
    return ManagedDatabase.from_row(rows[0])


def new_volume_name(database_id: str) -> str:
    return f"dployr-{database_id}"


async def take_kept_volume(conn: Transaction, owner_id: str, name: str) -> KeptVolume | None:
    """The owner's kept volume of a database called `name`, taken (its row goes)."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT engine, volume, username, database, password_enc FROM kept_database_volumes"
            " WHERE owner_id = ? AND name = ?",
            (owner_id, name),
        )
    )
    if not rows:
        return None
    await conn.execute(
        "DELETE FROM kept_database_volumes WHERE owner_id = ? AND name = ?", (owner_id, name)
    )
    return KeptVolume(*rows[0])


async def keep_volume(conn: Transaction, record: ManagedDatabase) -> None:
    await conn.execute(
        "INSERT OR REPLACE INTO kept_database_volumes (owner_id, name, engine, volume, username,"
        " database, password_enc, kept_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.owner_id,
            record.name,
            record.engine,
            record.volume,
            record.username,
            record.database,
            record.password_enc,
            now_iso(),
        ),
    )


async def get_database(
    db: Database, database_id: str, owner_id: str | None
) -> ManagedDatabase | None:
    """A database by id; with owner_id, only if that user owns it (else None: a 404)."""
    row = await db.fetchone(
        f"SELECT {_COLUMNS} FROM databases WHERE id = ? AND (? IS NULL OR owner_id = ?)",
        (database_id, owner_id, owner_id),
    )
    return ManagedDatabase.from_row(row) if row else None


async def all_databases(db: Database) -> list[ManagedDatabase]:
    rows = await db.fetchall(f"SELECT {_COLUMNS} FROM databases ORDER BY created_at")
    return [ManagedDatabase.from_row(r) for r in rows]


async def list_databases(
    db: Database,
    paging: PageRequest,
    owner_id: str | None,
    *,
    engine: str | None = None,
    project_id: str | None = None,
) -> Page[ManagedDatabase]:
    clauses, params = ["(:owner IS NULL OR owner_id = :owner)"], {"owner": owner_id}
    if engine:
        clauses.append("engine = :engine")
        params["engine"] = engine
    if project_id:
        clauses.append("project_id = :project")
        params["project"] = project_id
    where = " AND ".join(clauses)
    total = await db.fetchval(f"SELECT COUNT(*) FROM databases WHERE {where}", params)
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM databases WHERE {where} ORDER BY created_at DESC, rowid DESC"
        f" LIMIT {paging.per_page} OFFSET {paging.offset}",
        params,
    )
    return Page([ManagedDatabase.from_row(r) for r in rows], int(total), paging)


async def databases_of_project(db: Database, project_id: str) -> list[str]:
    rows = await db.fetchall("SELECT id FROM databases WHERE project_id = ?", (project_id,))
    return [str(r[0]) for r in rows]


async def used_host_ports(db: Database) -> set[int]:
    """Every database's host port (a stopped one's too: it gets it back when it starts)."""
    return {int(r[0]) for r in await db.fetchall("SELECT host_port FROM databases")}


async def update_database(
    db: Database, database_id: str, changes: dict[str, Any], event: Change | None = None
) -> ManagedDatabase | None:
    """Change columns of a database and append `event` with it, in one transaction. None: the
    row is gone (deleted meanwhile)."""
    assert set(changes) <= {"status", "error", "container_id", "host_port"}, changes
    async with db.transaction() as conn:
        cursor = await conn.execute(
            f"UPDATE databases SET {', '.join(f'{c} = ?' for c in changes)}, updated_at = ?"
            " WHERE id = ?",
            [*changes.values(), now_iso(), database_id],
        )
        if cursor.rowcount == 0:
            return None
        rows = list(
            await conn.execute_fetchall(
                f"SELECT {_COLUMNS} FROM databases WHERE id = ?", (database_id,)
            )
        )
        found = ManagedDatabase.from_row(rows[0])
        if event is not None:
            await events.append(conn, event[0], found.owner_id, event[1])
    return found


async def delete_database(conn: Transaction, database_id: str) -> None:
    """The row, its links and its backups' rows (ON DELETE CASCADE)."""
    await conn.execute("DELETE FROM databases WHERE id = ?", (database_id,))


# -- links --------------------------------------------------------------------------------------


async def links_of(db: Database | Transaction, database_id: str) -> list[Link]:
    sql = (
        "SELECT database_id, service_id, env, created_at FROM database_links"
        " WHERE database_id = ? ORDER BY created_at, service_id"
    )
    if isinstance(db, Database):
        rows = await db.fetchall(sql, (database_id,))
    else:
        rows = list(await db.execute_fetchall(sql, (database_id,)))
    return [Link(*r) for r in rows]


async def links_with_targets(conn: Transaction, database_id: str) -> list[tuple[Link, str]]:
    """The database's links, each with its service's target."""
    rows = await conn.execute_fetchall(
        "SELECT l.database_id, l.service_id, l.env, l.created_at, s.target"
        " FROM database_links l JOIN services s ON s.id = l.service_id"
        " WHERE l.database_id = ? ORDER BY l.created_at, l.service_id",
        (database_id,),
    )
    return [(Link(*r[:4]), str(r[4])) for r in rows]


async def linked_service_ids(db: Database, database_ids: list[str]) -> dict[str, list[str]]:
    """Each database's linked services, for a page of databases in one query."""
    found: dict[str, list[str]] = {database_id: [] for database_id in database_ids}
    if database_ids:
        marks = ", ".join("?" * len(database_ids))
        rows = await db.fetchall(
            "SELECT database_id, service_id FROM database_links"
            f" WHERE database_id IN ({marks}) ORDER BY created_at, service_id",
            database_ids,
        )
        for database_id, service_id in rows:
            found[database_id].append(service_id)
    return found


async def set_link(
    conn: Transaction,
    database_id: str,
    service_id: str,
    env: str,
    url: str,
    box: SecretBox,
) -> tuple[Link, bool]:
    """Link a service (its env var `env` = `url`, secret) or change an existing link's var;
    (the link, whether it is new). A key another database's link sets on it → 409."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT database_id, env FROM database_links WHERE service_id = ?", (service_id,)
        )
    )
    if any(row[1] == env and row[0] != database_id for row in rows):
        raise Conflict(
            f"Another database's link sets {env} on this service; unlink it or choose another env",
            details={"field": "env", "reason": "set by another database's link"},
        )
    old = next((str(row[1]) for row in rows if row[0] == database_id), None)
    if old != env and await services.has_env(conn, service_id, env):
        # The user's own variable: a link never overwrites it (nor would unlinking delete it).
        raise Conflict(
            f"The service already has an env var {env}; remove it or link with another env",
            details={"field": "env", "reason": "the service sets it itself"},
        )
    if old is not None and old != env:
        await conn.execute(
            "DELETE FROM service_env WHERE service_id = ? AND key = ?", (service_id, old)
        )
    now = now_iso()
    try:
        await conn.execute(
            "INSERT INTO database_links (database_id, service_id, env, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (database_id, service_id) DO UPDATE SET"
            " env = excluded.env",
            (database_id, service_id, env, now),
        )
    except sqlite3.IntegrityError:  # the database or the service was deleted meanwhile
        raise NotFound("The database or the service no longer exists") from None
    await services.upsert_env(conn, service_id, env, url, True, box)
    link = [link for link in await links_of(conn, database_id) if link.service_id == service_id]
    return link[0], old is None


async def remove_link(conn: Transaction, database_id: str, service_id: str) -> bool:
    """Unlink a service: its env var goes with the link. False: there was no such link."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT env FROM database_links WHERE database_id = ? AND service_id = ?",
            (database_id, service_id),
        )
    )
    if not rows:
        return False
    await conn.execute(
        "DELETE FROM service_env WHERE service_id = ? AND key = ?", (service_id, rows[0][0])
    )
    await conn.execute(
        "DELETE FROM database_links WHERE database_id = ? AND service_id = ?",
        (database_id, service_id),
    )
    return True
