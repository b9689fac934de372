"""API tokens: long-lived `dpl_…` tokens for scripts and CI, stored hashed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from dployr.ids import iso, new_id, now_iso, parse_iso, utcnow
from dployr.store.db import Database, Row
from dployr.store.paging import Page, PageRequest
from dployr.store.users import COLUMNS, User

TOKEN_COLUMNS = "id, user_id, name, prefix, created_at, expires_at, last_used_at"  # noqa: S105
_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most once a minute per token


@dataclass(frozen=True)
class ApiToken:
    id: str
    user_id: str
    name: str
    prefix: str
    created_at: str
    expires_at: str | None
    last_used_at: str | None

    @classmethod
    def from_row(cls, row: Row) -> ApiToken:
        return cls(**{key: row[key] for key in TOKEN_COLUMNS.split(", ")})


async def create_token(
    db: Database, user_id: str, name: str, token_hash: str, prefix: str, expires_at: str | None
) -> ApiToken:
    token_id = new_id("tok")
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, created_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (token_id, user_id, name, token_hash, prefix, now_iso(), expires_at),
        )
    token = await get_token(db, token_id, owner_id=None)
    assert token is not None
    return token


async def get_token(db: Database, token_id: str, owner_id: str | None) -> ApiToken | None:
    """A token by id; with owner_id, only if that user owns it."""
    row = await db.fetchone(
        f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ? AND (? IS NULL OR user_id = ?)",
        (token_id, owner_id, owner_id),
    )
    return ApiToken.from_row(row) if row else None


async def list_tokens(db: Database, paging: PageRequest, owner_id: str | None) -> Page[ApiToken]:
    where = "(? IS NULL OR user_id = ?)"
    total = await db.fetchval(
        f"SELECT COUNT(*) FROM api_tokens WHERE {where}",
        (owner_id, owner_id),
    )
    rows = await db.fetchall(
        f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE {where}"
        " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
        (owner_id, owner_id, paging.per_page, paging.offset),
    )
    return Page([ApiToken.from_row(r) for r in rows], int(total), paging)


async def delete_token(db: Database, token_id: str) -> None:
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,))


async def token_identity(db: Database, token_hash: str) -> tuple[User, str | None] | None:
    """The active user behind an unexpired API token, and the token's expiry.

    Notes when the token was last used (at most once a minute)."""
    row = await db.fetchone(
        f"SELECT {', '.join('u.' + c for c in COLUMNS.split(', '))},"
        " t.id AS token_id, t.expires_at AS token_expires_at, t.last_used_at AS token_used_at"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = ? AND u.is_active = 1",
        (token_hash,),
    )
    if row is None:
        return None
    now = utcnow()
    if row["token_expires_at"] and parse_iso(row["token_expires_at"]) <= now:
        return None
    used = row["token_used_at"]
    if used is None or now - parse_iso(used) >= _TOUCH_EVERY:
        async with db.transaction() as conn:
            await conn.execute(
                "UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (iso(now), row["token_id"])
            )
    return User.from_row(row), row["token_expires_at"]
