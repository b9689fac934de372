"""Outbound webhooks: a URL, the event types it wants, an encrypted secret and an active flag."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dployr.ids import new_id, now_iso
from dployr.store.db import Database, Row
from dployr.store.paging import Page, PageRequest

COLUMNS = "id, owner_id, url, events, secret_enc, active, start_seq, created_at, updated_at"
ALL_EVENTS = "*"


@dataclass(frozen=True)
class Webhook:
    id: str
    owner_id: str
    url: str
    events: tuple[str, ...]
    secret_enc: str
    active: bool
    start_seq: int
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: Row) -> Webhook:
        values = {key: row[key] for key in COLUMNS.split(", ")}
        values["events"] = tuple(json.loads(values["events"]))
        values["active"] = bool(values["active"])
        return cls(**values)

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.events or event_type in self.events

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner_id": self.owner_id,
            "url": self.url,
            "events": list(self.events),
            "active": self.active,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class WebhookChange:
    """The fields a PUT sets; None leaves one as it is."""

    url: str | None = None
    events: tuple[str, ...] | None = None
    secret_enc: str | None = None
    active: bool | None = None


async def create_webhook(
    db: Database,
    owner_id: str,
    url: str,
    events: tuple[str, ...],
    secret_enc: str,
    active: bool = True,
) -> Webhook:
    webhook_id, now = new_id("whk"), now_iso()
    async with db.transaction() as conn:
        # Events already in the log when the webhook is made are not sent to it.
        await conn.execute(
            f"INSERT INTO webhooks ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?,"
            " (SELECT COALESCE(MAX(seq), 0) FROM events), ?, ?)",
            (
                webhook_id,
                owner_id,
                url,
                json.dumps(list(events)),
                secret_enc,
                int(active),
                now,
                now,
            ),
        )
    webhook = await get_webhook(db, webhook_id, None)
    assert webhook is not None
    return webhook


async def get_webhook(db: Database, webhook_id: str, owner_id: str | None) -> Webhook | None:
    row = await db.fetchone(
        f"SELECT {COLUMNS} FROM webhooks WHERE id = ? AND (? IS NULL OR owner_id = ?)",
        (webhook_id, owner_id, owner_id),
    )
    return Webhook.from_row(row) if row else None


async def list_webhooks(db: Database, paging: PageRequest, owner_id: str | None) -> Page[Webhook]:
    params = {"owner": owner_id}
    where = ":owner IS NULL OR owner_id = :owner"
    total = await db.fetchval(f"SELECT COUNT(*) FROM webhooks WHERE {where}", params)
    rows = await db.fetchall(
        f"SELECT {COLUMNS} FROM webhooks WHERE {where} ORDER BY created_at DESC, rowid DESC"
        f" LIMIT {paging.per_page} OFFSET {paging.offset}",
        params,
    )
    return Page([Webhook.from_row(r) for r in rows], int(total), paging)


async def update_webhook(db: Database, webhook_id: str, change: WebhookChange) -> Webhook:
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE webhooks SET url = COALESCE(?, url), events = COALESCE(?, events),"
            " secret_enc = COALESCE(?, secret_enc), active = COALESCE(?, active),"
            " updated_at = ? WHERE id = ?",
            (
                change.url,
                None if change.events is None else json.dumps(list(change.events)),
                change.secret_enc,
                None if change.active is None else int(change.active),
                now_iso(),
                webhook_id,
            ),
        )
    webhook = await get_webhook(db, webhook_id, None)
    assert webhook is not None
    return webhook


async def delete_webhook(db: Database, webhook_id: str) -> None:
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
