"""Deployments (immutable release attempts), their stage log lines, and their events."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dployr.errors import Conflict
from dployr.ids import new_id, now_iso
from dployr.store import events
from dployr.store.db import Database, Row, Transaction
from dployr.store.paging import Page, PageRequest
from dployr.store.services import Service, service_by_name

COLUMNS = (
    "id, service_id, owner_id, project_id, number, status, progress, spec, env_enc, env_public,"
    " commit_sha, artifact, triggered_by, rollback_of, error, stages, host_port, instance_ref,"
    " created_at, started_at, finished_at"
)
STAGES = ("fetching", "building", "starting", "health_checking", "switching")
RUNNING = ("fetching", "building", "starting", "health_checking", "switching")
FINISHED = ("live", "failed", "cancelled", "superseded", "rolled_back")
STATUSES = ("queued", *RUNNING, *FINISHED)


@dataclass(frozen=True)
class Deployment:
    id: str
    service_id: str
    owner_id: str
    project_id: str
    number: int
    status: str
    progress: int
    spec: dict[str, Any]
    env_enc: str
    env_public: dict[str, str]
    commit_sha: str | None
    artifact: str | None
    triggered_by: str
    rollback_of: str | None
    error: str | None
    stages: list[dict[str, Any]]
    host_port: int | None
    instance_ref: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    service_name: str = field(default="")

    @classmethod
    def from_row(cls, row: Row) -> Deployment:
        values = list(row)
        for index in (7, 9, 15):  # spec, env_public, stages
            values[index] = json.loads(values[index])
        return cls(*values)

    def event_data(self, message: str, stage: str | None = None) -> dict[str, Any]:
        return {
            "deployment_id": self.id,
            "service_id": self.service_id,
            "service_name": self.service_name,
            "project_id": self.project_id,
            "number": self.number,
            "status": self.status,
            "stage": stage,
            "progress": self.progress,
            "message": message,
        }


_SELECT = f"SELECT {COLUMNS}, (SELECT name FROM services s WHERE s.id = d.service_id)"


async def get_deployment(
    db: Database, deployment_id: str, owner_id: str | None
) -> Deployment | None:
    row = await db.fetchone(
        f"{_SELECT} FROM deployments d WHERE id = ? AND (? IS NULL OR owner_id = ?)",
        (deployment_id, owner_id, owner_id),
    )
    return Deployment.from_row(row) if row else None


async def list_deployments(
    db: Database,
    paging: PageRequest,
    owner_id: str | None,
    *,
    service_id: str | None = None,
    project_id: str | None = None,
    status: str | None = None,
) -> Page[Deployment]:
    clauses, params = ["(:owner IS NULL OR owner_id = :owner)"], {"owner": owner_id}
    for column, value in (
        ("service_id", service_id),
        ("project_id", project_id),
        ("status", status),
    ):
        if value:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    where = " AND ".join(clauses)
    total = await db.fetchval(f"SELECT COUNT(*) FROM deployments WHERE {where}", params)
    rows = await db.fetchall(
        f"{_SELECT} FROM deployments d WHERE {where} ORDER BY created_at DESC, rowid DESC"
        f" LIMIT {paging.per_page} OFFSET {paging.offset}",
        params,
    )
    return Page([Deployment.from_row(r) for r in rows], int(total), paging)


async def deployments_in(db: Database, statuses: Sequence[str]) -> list[Deployment]:
    marks = ", ".join("?" for _ in statuses)
    rows = await db.fetchall(
        f"{_SELECT} FROM deployments d WHERE status IN ({marks}) ORDER BY created_at, rowid",
        tuple(statuses),
    )
    return [Deployment.from_row(r) for r in rows]


async def deployments_of(db: Database, service_id: str) -> list[Deployment]:
    rows = await db.fetchall(
        f"{_SELECT} FROM deployments d WHERE service_id = ? ORDER BY number DESC", (service_id,)
    )
    return [Deployment.from_row(r) for r in rows]


async def latest_deployment(db: Database, service_id: str) -> Deployment | None:
    row = await db.fetchone(
        f"{_SELECT} FROM deployments d WHERE service_id = ? ORDER BY number DESC LIMIT 1",
        (service_id,),
    )
    return Deployment.from_row(row) if row else None


async def last_commit(db: Database, service_id: str) -> str | None:
    """The commit of the service's newest deployment that recorded one (a rollback records
    none: its release's commit is the one before it)."""
    value = await db.fetchval(
        "SELECT commit_sha FROM deployments WHERE service_id = ? AND commit_sha IS NOT NULL"
        " ORDER BY number DESC LIMIT 1",
        (service_id,),
    )
    return str(value) if value is not None else None


async def has_unfinished(db: Database, service_id: str) -> bool:
    marks = ", ".join("?" for _ in FINISHED)
    found = await db.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM deployments WHERE service_id = ?"
        f" AND status NOT IN ({marks}))",
        (service_id, *FINISHED),
    )
    return bool(found)


async def repin_queued(conn: Transaction, service_id: str, commit_sha: str) -> Deployment | None:
    """Inside the caller's transaction: point the service's newest still-queued push-hook
    deployment at `commit_sha` (a burst of pushes builds once, the newest). None when there
    is none: the pipeline moves a deployment out of `queued` before it reads its commit."""
    cursor = await conn.execute(
        "UPDATE deployments SET commit_sha = ? WHERE id = (SELECT id FROM deployments"
        " WHERE service_id = ? AND status = 'queued' AND triggered_by = 'webhook'"
        " ORDER BY number DESC LIMIT 1) RETURNING id",
        (commit_sha, service_id),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    cursor = await conn.execute(f"{_SELECT} FROM deployments d WHERE id = ?", (row[0],))
    return Deployment.from_row(await cursor.fetchone())  # type: ignore[arg-type]


async def queued_uploads(conn: Transaction | Database, service_id: str) -> int:
    """The service's queued deployments of source upload (each keeps its archive on disk
    until it runs); inside the caller's transaction when given one."""
    sql = (
        "SELECT COUNT(*) FROM deployments WHERE service_id = ? AND status = 'queued'"
        " AND json_extract(spec, '$.source') = 'upload'"
    )
    if isinstance(conn, Database):
        return int(await conn.fetchval(sql, (service_id,)))
    row = await (await conn.execute(sql, (service_id,))).fetchone()
    return int(row[0]) if row is not None else 0


@dataclass(frozen=True)
class NewDeployment:
    owner_id: str
    project_id: str
    name: str
    runtime: str
    target: str
    spec: dict[str, Any]
    triggered_by: str
    rollback_of: str | None = None
    artifact: str | None = None
    auto_deploy: str | None = None
    commit_sha: str | None = None  # a push hook's commit: the fetch builds exactly it


async def insert_deployment(
    conn: Transaction, new: NewDeployment, service: Service, env: tuple[str, str]
) -> Deployment:
    """Inside the caller's transaction: the next numbered deployment of `service`, queued."""
    deployment_id, now = new_id("dep"), now_iso()
    cursor = await conn.execute(
        "UPDATE services SET next_number = next_number + 1, runtime = ?, target = ?,"
        " auto_deploy = COALESCE(?, auto_deploy), updated_at = ? WHERE id = ?"
        " RETURNING next_number - 1",
        (new.runtime, new.target, new.auto_deploy, now, service.id),
    )
    row = await cursor.fetchone()
    assert row is not None
    number = int(row[0])
    stages = [
        {
            "name": name,
            "status": "pending",
            "started_at": None,
            "finished_at": None,
            "message": None,
        }
        for name in STAGES
    ]
    await conn.execute(
        f"INSERT INTO deployments ({COLUMNS}) VALUES"
        " (?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, NULL, ?, NULL, NULL)",
        (
            deployment_id,
            service.id,
            new.owner_id,
            service.project_id,
            number,
            json.dumps(new.spec),
            env[0],
            env[1],
            new.commit_sha,
            new.artifact,
            new.triggered_by,
            new.rollback_of,
            json.dumps(stages),
            now,
        ),
    )
    cursor = await conn.execute(f"{_SELECT} FROM deployments d WHERE id = ?", (deployment_id,))
    created = Deployment.from_row(await cursor.fetchone())  # type: ignore[arg-type]
    await events.append(conn, "deployment.created", new.owner_id, created.event_data("queued"))
    return created


async def create_service(conn: Transaction, new: NewDeployment, hook_secret_enc: str) -> Service:
    service_id, now = new_id("svc"), now_iso()
    try:
        await conn.execute(
            "INSERT INTO services (id, owner_id, project_id, name, runtime, target,"
            " auto_deploy, hook_secret_enc, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                service_id,
                new.owner_id,
                new.project_id,
                new.name,
                new.runtime,
                new.target,
                new.auto_deploy or "webhook",
                hook_secret_enc,
                now,
                now,
            ),
        )
    except sqlite3.IntegrityError as err:
        raise Conflict(f"Cannot create service {new.name!r}: {err}") from None
    service = await service_by_name(conn, new.owner_id, new.name)
    assert service is not None
    return service


async def update_deployment(
    db: Database,
    deployment_id: str,
    changes: dict[str, Any],
    event: tuple[str, str, str | None] | None = None,
) -> Deployment:
    """Write `changes` and, in the same transaction, the event (type, message, stage)."""
    assert set(changes) <= set(COLUMNS.split(", ")) - {"id", "service_id", "owner_id"}, changes
    values = {k: json.dumps(v) if k == "stages" else v for k, v in changes.items()}
    async with db.transaction() as conn:
        if values:
            sets = ", ".join(f"{column} = ?" for column in values)
            await conn.execute(
                f"UPDATE deployments SET {sets} WHERE id = ?", [*values.values(), deployment_id]
            )
        cursor = await conn.execute(f"{_SELECT} FROM deployments d WHERE id = ?", (deployment_id,))
        row = await cursor.fetchone()
        assert row is not None
        deployment = Deployment.from_row(row)
        if event is not None:
            type_, message, stage = event
            await events.append(
                conn, type_, deployment.owner_id, deployment.event_data(message, stage)
            )
    return deployment


async def make_live(
    db: Database, deployment: Deployment, message: str
) -> tuple[Deployment, Deployment | None]:
    """The switch, atomically: this deployment live and current, the one it replaces
    superseded (or rolled_back when this is a rollback). Returns it and the old one."""
    now = now_iso()
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT current_deployment_id FROM services WHERE id = ?", (deployment.service_id,)
        )
        row = await cursor.fetchone()
        previous_id = row[0] if row else None
        await conn.execute(
            "UPDATE deployments SET status = 'live', progress = 100, finished_at = ?,"
            " error = NULL WHERE id = ?",
            (now, deployment.id),
        )
        await conn.execute(
            # A release that goes live runs: a deploy of a stopped service starts it.
            "UPDATE services SET current_deployment_id = ?, desired_state = 'running',"
            " updated_at = ? WHERE id = ?",
            (deployment.id, now, deployment.service_id),
        )
        previous = None
        if previous_id and previous_id != deployment.id:
            new_status = "rolled_back" if deployment.rollback_of else "superseded"
            await conn.execute(
                "UPDATE deployments SET status = ? WHERE id = ? AND status = 'live'",
                (new_status, previous_id),
            )
            cursor = await conn.execute(
                f"{_SELECT} FROM deployments d WHERE id = ?", (previous_id,)
            )
            old_row = await cursor.fetchone()
            previous = Deployment.from_row(old_row) if old_row else None
        cursor = await conn.execute(f"{_SELECT} FROM deployments d WHERE id = ?", (deployment.id,))
        live = Deployment.from_row(await cursor.fetchone())  # type: ignore[arg-type]
        await events.append(conn, "deployment.succeeded", live.owner_id, live.event_data(message))
        if previous is not None and deployment.rollback_of:
            data = previous.event_data(f"rolled back to release {live.number}")
            data["rollback_deployment_id"] = live.id
            await events.append(conn, "deployment.rolled_back", live.owner_id, data)
    return live, previous


async def clear_current(db: Database, service_id: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE services SET current_deployment_id = NULL WHERE id = ?", (service_id,)
        )


async def delete_deployment(db: Database, deployment_id: str) -> None:
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM deployments WHERE id = ?", (deployment_id,))


# -- the deployment log --------------------------------------------------------------------------


async def artifact_in_use(db: Database, service_id: str, artifact: str, *, besides: str) -> bool:
    """Does any deployment of the service but `besides` (in any state) name this artifact?"""
    row = await db.fetchone(
        "SELECT 1 FROM deployments WHERE service_id = ? AND artifact = ? AND id != ? LIMIT 1",
        (service_id, artifact, besides),
    )
    return row is not None


async def append_log(db: Database, deployment_id: str, lines: list[tuple[int, str, str]]) -> None:
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT OR IGNORE INTO deployment_logs (deployment_id, seq, timestamp, line)"
            " VALUES (?, ?, ?, ?)",
            [(deployment_id, seq, ts, line) for seq, ts, line in lines],
        )


async def read_log(
    db: Database,
    deployment_id: str,
    after_seq: int = 0,
    limit: int = 1000,
    max_bytes: int = 1_048_576,
) -> list[tuple[int, str, str]]:
    """Lines after `after_seq`, in order: at most `limit` of them, and no more after the
    line that reaches `max_bytes` (always at least one line when there is one)."""
    rows = await db.fetchall(
        "SELECT seq, timestamp, line FROM ("
        " SELECT seq, timestamp, line, length(CAST(line AS BLOB)) AS size,"
        " SUM(length(CAST(line AS BLOB))) OVER (ORDER BY seq) AS total"
        " FROM deployment_logs WHERE deployment_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        ") WHERE total - size < ? ORDER BY seq",
        (deployment_id, after_seq, limit, max_bytes),
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def log_bytes(db: Database, deployment_id: str) -> int:
    """The bytes a deployment's log holds (a newline counted per line), for its cap."""
    value = await db.fetchval(
        "SELECT SUM(length(CAST(line AS BLOB)) + 1) FROM deployment_logs WHERE deployment_id = ?",
        (deployment_id,),
    )
    return int(value or 0)


async def last_log_seq(db: Database, deployment_id: str) -> int:
    value = await db.fetchval(
        "SELECT MAX(seq) FROM deployment_logs WHERE deployment_id = ?", (deployment_id,)
    )
    return int(value or 0)
