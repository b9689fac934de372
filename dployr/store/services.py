"""Services and their env: the long-lived apps, one row each, plus the one list of variables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dployr.crypto import MASK, SecretBox
from dployr.ids import now_iso
from dployr.store import events
from dployr.store.db import Database, Row, Transaction
from dployr.store.paging import Page, PageRequest, like_escape

COLUMNS = (
    "id, owner_id, project_id, name, runtime, target, desired_state, auto_deploy,"
    " hook_secret_enc, current_deployment_id, created_at, updated_at, replicas"
)


@dataclass(frozen=True)
class Service:
    id: str
    owner_id: str
    project_id: str
    name: str
    runtime: str
    target: str
    desired_state: str
    auto_deploy: str
    hook_secret_enc: str
    current_deployment_id: str | None
    created_at: str
    updated_at: str
    # swarm (SPEC §15): the tasks it runs when a release names none; None: never set (1)
    replicas: int | None = None

    @classmethod
    def from_row(cls, row: Row) -> Service:
        return cls(*row)


@dataclass(frozen=True)
class EnvVar:
    key: str
    value: str  # plain text: decrypt before, mask when shown
    secret: bool
    updated_at: str

    def public(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": MASK if self.secret else self.value,
            "secret": self.secret,
            "updated_at": self.updated_at,
        }


async def get_service(db: Database, service_id: str, owner_id: str | None) -> Service | None:
    row = await db.fetchone(
        f"SELECT {COLUMNS} FROM services WHERE id = ? AND (? IS NULL OR owner_id = ?)",
        (service_id, owner_id, owner_id),
    )
    return Service.from_row(row) if row else None


async def service_by_name(conn: Transaction | Database, owner_id: str, name: str) -> Service | None:
    sql = f"SELECT {COLUMNS} FROM services WHERE owner_id = ? AND name = ?"
    if isinstance(conn, Database):
        row = await conn.fetchone(sql, (owner_id, name))
    else:
        row = await (await conn.execute(sql, (owner_id, name))).fetchone()
    return Service.from_row(row) if row else None


async def all_services(db: Database) -> list[Service]:
    return [Service.from_row(r) for r in await db.fetchall(f"SELECT {COLUMNS} FROM services")]


async def polled_services(db: Database) -> list[Service]:
    rows = await db.fetchall(
        f"SELECT {COLUMNS} FROM services WHERE auto_deploy = 'poll' ORDER BY created_at"
    )
    return [Service.from_row(r) for r in rows]


async def services_of_project(db: Database, project_id: str) -> list[Service]:
    rows = await db.fetchall(f"SELECT {COLUMNS} FROM services WHERE project_id = ?", (project_id,))
    return [Service.from_row(r) for r in rows]


async def list_services(
    db: Database,
    paging: PageRequest,
    owner_id: str | None,
    *,
    project_id: str | None = None,
    search: str | None = None,
) -> Page[Service]:
    clauses, params = ["(:owner IS NULL OR owner_id = :owner)"], {"owner": owner_id}
    if project_id:
        clauses.append("project_id = :project")
        params["project"] = project_id
    if search:
        clauses.append("name LIKE :search ESCAPE '\\'")
        params["search"] = f"%{like_escape(search)}%"
    where = " AND ".join(clauses)
    total = await db.fetchval(f"SELECT COUNT(*) FROM services WHERE {where}", params)
    rows = await db.fetchall(
        f"SELECT {COLUMNS} FROM services WHERE {where} ORDER BY created_at DESC, rowid DESC"
        f" LIMIT {paging.per_page} OFFSET {paging.offset}",
        params,
    )
    return Page([Service.from_row(r) for r in rows], int(total), paging)


async def set_desired_state(
    db: Database, service: Service, state: str, event: tuple[str, dict[str, Any]]
) -> None:
    """The service's desired state and the event that says so, in one transaction."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE services SET desired_state = ?, updated_at = ? WHERE id = ?",
            (state, now_iso(), service.id),
        )
        await events.append(conn, event[0], service.owner_id, event[1])


async def set_replicas(conn: Transaction | Database, service_id: str, replicas: int) -> None:
    """The service's replica count (swarm): what a release that names none runs, and what
    POST /services/{id}/scale set."""
    sql = "UPDATE services SET replicas = ?, updated_at = ? WHERE id = ?"
    if isinstance(conn, Database):
        async with conn.transaction() as tx:
            await tx.execute(sql, (replicas, now_iso(), service_id))
    else:
        await conn.execute(sql, (replicas, now_iso(), service_id))


async def delete_service(conn: Transaction, service_id: str) -> None:
    await conn.execute("DELETE FROM services WHERE id = ?", (service_id,))
    await conn.execute("DELETE FROM service_metrics WHERE service_id = ?", (service_id,))


# -- env ----------------------------------------------------------------------------------------


async def read_env(conn: Transaction | Database, service_id: str, box: SecretBox) -> list[EnvVar]:
    sql = "SELECT key, value, value_enc, secret, updated_at FROM service_env WHERE service_id = ?"
    if isinstance(conn, Database):
        rows = await conn.fetchall(sql + " ORDER BY key", (service_id,))
    else:
        rows = list(await conn.execute_fetchall(sql + " ORDER BY key", (service_id,)))
    return [EnvVar(r[0], box.decrypt(r[2]) if r[3] else r[1], bool(r[3]), r[4]) for r in rows]


async def upsert_env(
    conn: Transaction,
    service_id: str,
    key: str,
    value: str,
    secret: bool | None,
    box: SecretBox,
) -> EnvVar:
    """Set a variable. `secret=None` keeps the key's flag (a new key is plain): a redeploy that
    names a secret key without saying `secret` must not turn it into plain text."""
    if secret is None:
        rows = await conn.execute_fetchall(
            "SELECT secret FROM service_env WHERE service_id = ? AND key = ?", (service_id, key)
        )
        secret = any(bool(row[0]) for row in rows)
    now = now_iso()
    await conn.execute(
        "INSERT INTO service_env (service_id, key, value, value_enc, secret, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (service_id, key) DO UPDATE SET"
        " value = excluded.value, value_enc = excluded.value_enc, secret = excluded.secret,"
        " updated_at = excluded.updated_at",
        (
            service_id,
            key,
            None if secret else value,
            box.encrypt(value) if secret else None,
            int(secret),
            now,
        ),
    )
    return EnvVar(key, value, secret, now)


async def has_env(conn: Transaction, service_id: str, key: str) -> bool:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM service_env WHERE service_id = ? AND key = ?", (service_id, key)
    )
    return bool(list(rows))


async def linked_env(conn: Transaction, service_id: str, key: str) -> str | None:
    """The database whose link sets this variable (SPEC §14), if one does."""
    rows = await conn.execute_fetchall(
        "SELECT database_id FROM database_links WHERE service_id = ? AND env = ?",
        (service_id, key),
    )
    return next((str(row[0]) for row in rows), None)


async def delete_env(db: Database, service_id: str, key: str) -> bool:
    """Remove a variable; a link that set it goes with it (the service no longer has its URL,
    so it is no longer linked)."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "DELETE FROM service_env WHERE service_id = ? AND key = ?", (service_id, key)
        )
        await conn.execute(
            "DELETE FROM database_links WHERE service_id = ? AND env = ?", (service_id, key)
        )
        return cursor.rowcount > 0


def env_snapshot(env: list[EnvVar], box: SecretBox) -> tuple[str, str]:
    """(encrypted JSON of every value, JSON with secret values masked) for a deployment row."""
    plain = {"vars": [[v.key, v.value, v.secret] for v in env]}
    public = {v.key: MASK if v.secret else v.value for v in env}
    return box.encrypt(json.dumps(plain)), json.dumps(public)


def open_snapshot(env_enc: str, box: SecretBox) -> tuple[dict[str, str], list[str]]:
    """A deployment's env as {key: value}, and its secret values (to mask in output)."""
    plain = json.loads(box.decrypt(env_enc))["vars"]
    return {k: v for k, v, _ in plain}, [v for _, v, secret in plain if secret]
