"""Webhook deliveries: made from the event log by seq, written before the first attempt."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dployr.ids import new_id, now_iso
from dployr.store.db import Database, Row
from dployr.store.paging import Page, PageRequest

COLUMNS = (
    "id, webhook_id, event_id, event_type, body, status, attempts, last_status_code,"
    " last_error, last_response, last_latency_ms, next_attempt_at, created_at, delivered_at"
)
_INSERT = (
    f"INSERT INTO deliveries ({COLUMNS}) VALUES (?, ?, ?, ?, ?, 'pending', 0, NULL, NULL,"
    " NULL, NULL, ?, ?, NULL)"
)


@dataclass(frozen=True)
class Delivery:
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    body: str
    status: str  # pending | delivered | failed
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_response: str | None
    last_latency_ms: int | None
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None

    @classmethod
    def from_row(cls, row: Row) -> Delivery:
        return cls(*row)

    def public(self) -> dict[str, Any]:
        values = {key: getattr(self, key) for key in COLUMNS.split(", ")}
        del values["body"]
        return values


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to; `next_attempt_at` None ends the delivery (delivered/failed)."""

    status: str
    status_code: int | None
    error: str | None
    response: str | None
    latency_ms: int | None
    next_attempt_at: str | None
    disable_webhook: bool = False  # the receiver answered 410 Gone


async def fan_out(db: Database, limit: int = 500) -> int:
    """Write the deliveries of the events after the cursor, and move it, in one transaction:
    a crash leaves both or neither. A webhook gets its owner's events (an admin's also the
    events that belong to no one) logged after it was made. Returns how many events were read."""
    async with db.transaction() as conn:
        rows = await conn.execute_fetchall(
            "SELECT e.seq, e.id, e.type, e.owner_id, e.created_at, e.data"
            " FROM events e, webhook_cursor c WHERE e.seq > c.seq ORDER BY e.seq LIMIT ?",
            (limit,),
        )
        events = list(rows)
        if not events:
            return 0
        hooks = list(
            await conn.execute_fetchall(
                "SELECT w.id, w.owner_id, w.events, w.start_seq, u.role = 'admin'"
                " FROM webhooks w JOIN users u ON u.id = w.owner_id WHERE w.active = 1"
            )
        )
        now, new = now_iso(), []
        for seq, event_id, type_, owner_id, created_at, data in events:
            body = None
            for hook_id, hook_owner, wanted, start_seq, is_admin in hooks:
                types = json.loads(wanted)
                if seq <= start_seq or ("*" not in types and type_ not in types):
                    continue
                if owner_id != hook_owner and not (owner_id is None and is_admin):
                    continue
                if body is None:
                    body = event_body(event_id, type_, created_at, json.loads(data))
                new.append((new_id("dlv"), hook_id, event_id, type_, body, now, now))
        await conn.executemany(_INSERT, new)
        await conn.execute("UPDATE webhook_cursor SET seq = ? WHERE id = 1", (events[-1][0],))
    return len(events)


def event_body(event_id: str, type_: str, created_at: str, data: Any) -> str:
    """The event object, as the API shows it, serialised once: the signed bytes."""
    return json.dumps(
        {"id": event_id, "type": type_, "created_at": created_at, "data": data},
        separators=(",", ":"),
    )


async def create_delivery(
    db: Database, webhook_id: str, event_id: str, event_type: str, body: str
) -> Delivery:
    """A delivery made by hand (ping, redeliver): due at once."""
    delivery_id, now = new_id("dlv"), now_iso()
    async with db.transaction() as conn:
        await conn.execute(_INSERT, (delivery_id, webhook_id, event_id, event_type, body, now, now))
    delivery = await get_delivery(db, webhook_id, delivery_id)
    assert delivery is not None
    return delivery


async def get_delivery(db: Database, webhook_id: str, delivery_id: str) -> Delivery | None:
    row = await db.fetchone(
        f"SELECT {COLUMNS} FROM deliveries WHERE id = ? AND webhook_id = ?",
        (delivery_id, webhook_id),
    )
    return Delivery.from_row(row) if row else None


async def list_deliveries(db: Database, webhook_id: str, paging: PageRequest) -> Page[Delivery]:
    total = await db.fetchval("SELECT COUNT(*) FROM deliveries WHERE webhook_id = ?", (webhook_id,))
    rows = await db.fetchall(
        f"SELECT {COLUMNS} FROM deliveries WHERE webhook_id = ?"
        f" ORDER BY created_at DESC, rowid DESC LIMIT {paging.per_page} OFFSET {paging.offset}",
        (webhook_id,),
    )
    return Page([Delivery.from_row(r) for r in rows], int(total), paging)


async def due_deliveries(db: Database, now: str, limit: int = 50) -> list[Delivery]:
    """Pending deliveries whose time has come, of active webhooks, oldest first."""
    rows = await db.fetchall(
        f"SELECT {', '.join('d.' + c for c in COLUMNS.split(', '))} FROM deliveries d"
        " JOIN webhooks w ON w.id = d.webhook_id"
        " WHERE d.status = 'pending' AND w.active = 1 AND d.next_attempt_at <= ?"
        " ORDER BY d.next_attempt_at, d.rowid LIMIT ?",
        (now, limit),
    )
    return [Delivery.from_row(r) for r in rows]


async def next_due_at(db: Database) -> str | None:
    """When the next pending delivery of an active webhook is due (None: none is pending)."""
    value = await db.fetchval(
        "SELECT MIN(d.next_attempt_at) FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id"
        " WHERE d.status = 'pending' AND w.active = 1"
    )
    return None if value is None else str(value)


async def record_attempt(db: Database, delivery: Delivery, attempt: Attempt) -> int:
    """Record one attempt; returns how many pending deliveries it ended (this one when its
    status is final, and the webhook's others on a 410): 0 for a retry, or for an attempt
    whose delivery a sibling's 410 ended while it was in flight."""
    async with db.transaction() as conn:
        rows = await conn.execute_fetchall(
            "SELECT status FROM deliveries WHERE id = ?", (delivery.id,)
        )
        was_pending = [tuple(row) for row in rows] == [("pending",)]
        ended = int(was_pending and attempt.status != "pending")
        await conn.execute(
            "UPDATE deliveries SET status = ?, attempts = attempts + 1, last_status_code = ?,"
            " last_error = ?, last_response = ?, last_latency_ms = ?, next_attempt_at = ?,"
            " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END"
            " WHERE id = ?",
            (
                attempt.status,
                attempt.status_code,
                attempt.error,
                attempt.response,
                attempt.latency_ms,
                attempt.next_attempt_at,
                attempt.status,
                now_iso(),
                delivery.id,
            ),
        )
        if attempt.disable_webhook:
            # 410 Gone: the receiver is gone for good; its other pending deliveries end too.
            await conn.execute(
                "UPDATE webhooks SET active = 0, updated_at = ? WHERE id = ?",
                (now_iso(), delivery.webhook_id),
            )
            cursor = await conn.execute(
                "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL,"
                " last_error = 'webhook disabled: the receiver answered 410 Gone'"
                " WHERE webhook_id = ? AND status = 'pending'",
                (delivery.webhook_id,),
            )
            ended += int(cursor.rowcount)
    return ended
