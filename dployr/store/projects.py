"""Projects: named groups of services, owned by a user."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from dployr.errors import Conflict
from dployr.ids import new_id, now_iso
from dployr.store.db import Database, Row, Transaction
from dployr.store.paging import JsonPage, PageRequest, like_escape

COLUMNS = "id, owner_id, name, description, status, settings, created_at, updated_at"
# A project as the API shows it, rendered by SQLite so that a list goes from the database to
# the client with no Python object per row (the hot path measured by bench/api.py).
# api.projects.project_json is the same shape for one object; a test pins the two together.
JSON_OBJECT = (
    "json_object('id', id, 'owner_id', owner_id, 'name', name, 'description', description,"
    " 'status', status, 'settings', json(settings), 'created_at', created_at,"
    " 'updated_at', updated_at)"
)
DEFAULT_PROJECT = "default"


@dataclass(frozen=True)
class Project:
    id: str
    owner_id: str
    name: str
    description: str
    status: str
    settings: dict[str, Any]
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: Row) -> Project:
        # Positional, in COLUMNS order: this runs for every row of every list.
        settings = row[5]
        return cls(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            {} if settings == "{}" else json.loads(settings),
            row[6],
            row[7],
        )


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"You already have a project named {name!r}",
        details={"field": "name", "reason": "already exists"},
    )


async def create_project(
    db: Database, owner_id: str, name: str, description: str, settings: dict[str, Any]
) -> Project:
    project_id, now = new_id("prj"), now_iso()
    async with db.transaction() as conn:
        try:
            await conn.execute(
                "INSERT INTO projects (id, owner_id, name, description, status, settings,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, 'active', ?, ?, ?)",
                (project_id, owner_id, name, description, json.dumps(settings), now, now),
            )
        except sqlite3.IntegrityError:
            raise _name_taken(name) from None
    project = await get_project(db, project_id, owner_id=None)
    assert project is not None
    return project


async def get_project(db: Database, project_id: str, owner_id: str | None) -> Project | None:
    """A project by id; with owner_id, only if that user owns it (else None: a 404)."""
    row = await db.fetchone(
        f"SELECT {COLUMNS} FROM projects WHERE id = ? AND (? IS NULL OR owner_id = ?)",
        (project_id, owner_id, owner_id),
    )
    return Project.from_row(row) if row else None


async def list_projects(
    db: Database,
    paging: PageRequest,
    owner_id: str | None,
    *,
    search: str | None = None,
    status: str | None = None,
) -> JsonPage:
    """Newest first, as JSON text. The total rides along (a scalar subquery): one query a page."""
    clauses: list[str] = []
    params: dict[str, Any] = {"limit": paging.per_page, "offset": paging.offset}
    if owner_id:
        clauses.append("owner_id = :owner")
        params["owner"] = owner_id
    if status:
        clauses.append("status = :status")
        params["status"] = status
    if search:
        clauses.append("name LIKE :search ESCAPE '\\'")
        params["search"] = f"%{like_escape(search)}%"
    where = " AND ".join(clauses) or "1"
    # SQLite renders the page: the subquery's order (it has a LIMIT, so it is never flattened)
    # is the order the rows reach json_group_array. The count is a scalar subquery over the
    # index, not a window over the rows: half the time of `COUNT(*) OVER ()` (bench/api.py),
    # and it is there past the last page too.
    row = await db.fetchone(
        f"SELECT json_group_array({JSON_OBJECT}),"
        f" (SELECT COUNT(*) FROM projects WHERE {where}) FROM ("
        f" SELECT * FROM projects WHERE {where}"
        " ORDER BY created_at DESC, rowid DESC LIMIT :limit OFFSET :offset)",
        params,
    )
    assert row is not None
    items, total = row
    return JsonPage(items, int(total), paging)


async def update_project(db: Database, project_id: str, changes: dict[str, Any]) -> Project:
    assert set(changes) <= {"name", "description", "status", "settings"}, changes
    if "settings" in changes:
        changes = {**changes, "settings": json.dumps(changes["settings"])}
    if changes:
        sets = ", ".join(f"{column} = ?" for column in changes)
        async with db.transaction() as conn:
            try:
                await conn.execute(
                    f"UPDATE projects SET {sets}, updated_at = ? WHERE id = ?",
                    [*changes.values(), now_iso(), project_id],
                )
            except sqlite3.IntegrityError:
                raise _name_taken(str(changes.get("name"))) from None
    project = await get_project(db, project_id, owner_id=None)
    assert project is not None
    return project


async def delete_project(db: Database, project_id: str) -> None:
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))


async def default_project_id(conn: Transaction, owner_id: str) -> str:
    """The owner's `default` project, made on first use (inside the caller's transaction)."""
    cursor = await conn.execute(
        "SELECT id FROM projects WHERE owner_id = ? AND name = ?", (owner_id, DEFAULT_PROJECT)
    )
    row = await cursor.fetchone()
    if row:
        return str(row[0])
    project_id, now = new_id("prj"), now_iso()
    await conn.execute(
        "INSERT INTO projects (id, owner_id, name, description, status, settings, created_at,"
        " updated_at) VALUES (?, ?, ?, 'Services deployed without a project', 'active', '{}',"
        " ?, ?)",
        (project_id, owner_id, DEFAULT_PROJECT, now, now),
    )
    return project_id
