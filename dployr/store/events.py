"""The event log: appended in the same transaction as the change it records, read in order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dployr.ids import new_id, now_iso
from dployr.store.db import Database, Row, Transaction

COLUMNS = "seq, id, type, owner_id, created_at, data"


@dataclass(frozen=True)
class Event:
    seq: int
    id: str
    type: str
    owner_id: str | None
    created_at: str
    data: dict[str, Any]

    @classmethod
    def from_row(cls, row: Row) -> Event:
        values = {key: row[key] for key in COLUMNS.split(", ")}
        values["data"] = json.loads(values["data"])
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """The event as the API, the WebSocket and webhooks show it."""
        return {"id": self.id, "type": self.type, "created_at": self.created_at, "data": self.data}


async def append(
    conn: Transaction, type_: str, owner_id: str | None, data: dict[str, Any]
) -> Event:
    """Record an event inside the caller's write transaction: it commits with the change, and
    the transaction publishes it after COMMIT (never before, never by hand)."""
    event_id, now, payload = new_id("evt"), now_iso(), json.dumps(data)
    cursor = await conn.execute(
        "INSERT INTO events (id, type, owner_id, created_at, data) VALUES (?, ?, ?, ?, ?)",
        (event_id, type_, owner_id, now, payload),
    )
    seq = cursor.lastrowid
    assert seq is not None
    event = Event(seq, event_id, type_, owner_id, now, data)
    conn.events.append(event)
    return event


async def append_event(
    db: Database, type_: str, owner_id: str | None, data: dict[str, Any]
) -> Event:
    """An event that is a change of its own (no other row changes with it); owner None: the
    host's (only admins see those)."""
    async with db.transaction() as conn:
        return await append(conn, type_, owner_id, data)


async def seq_of(db: Database, event_id: str, owner_id: str | None = None) -> int | None:
    """The event's seq; with owner_id None unless it is that user's (no existence leak)."""
    value = await db.fetchval(
        "SELECT seq FROM events WHERE id = ? AND (? IS NULL OR owner_id = ?)",
        (event_id, owner_id, owner_id),
    )
    return int(value) if value is not None else None


async def events_after(
    db: Database, after_seq: int, owner_id: str | None, limit: int = 500
) -> list[Event]:
    """Events newer than `after_seq`, oldest first; with owner_id only that user's."""
    rows = await db.fetchall(
        f"SELECT {COLUMNS} FROM events WHERE seq > ? AND (? IS NULL OR owner_id = ?)"
        " ORDER BY seq LIMIT ?",
        (after_seq, owner_id, owner_id, limit),
    )
    return [Event.from_row(r) for r in rows]
