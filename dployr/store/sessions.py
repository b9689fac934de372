"""Login sessions: refresh-token families with rotation and reuse detection, revoked access jtis."""

from __future__ import annotations

from dataclasses import dataclass

from dployr.ids import iso_in, new_id, now_iso
from dployr.store.db import Database, Transaction
from dployr.store.users import COLUMNS, User


@dataclass(frozen=True)
class RefreshOutcome:
    """What presenting a refresh token found; `reused` means the family was just revoked."""

    user_id: str | None = None
    session_id: str | None = None
    reused: bool = False


async def create_session(db: Database, user_id: str, refresh_hash: str, ttl: int) -> str:
    session_id = new_id("ses")
    now = now_iso()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)",
            (session_id, user_id, now),
        )
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at, created_at)"
            " VALUES (?, ?, ?, ?)",
            (refresh_hash, session_id, iso_in(ttl), now),
        )
    return session_id


async def rotate_refresh(db: Database, old_hash: str, new_hash: str, ttl: int) -> RefreshOutcome:
    """Spend a refresh token and store its successor in one transaction.

    A token that was already spent revokes its whole family (someone replayed it)."""
    now = now_iso()
    async with db.transaction() as conn:
        rows = list(
            await conn.execute_fetchall(
                "SELECT t.session_id, t.expires_at, t.used_at, s.user_id, s.revoked_at,"
                " u.is_active FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id"
                " JOIN users u ON u.id = s.user_id WHERE t.token_hash = ?",
                (old_hash,),
            )
        )
        if not rows:
            return RefreshOutcome()
        row = rows[0]
        if row["revoked_at"] is not None or not row["is_active"]:
            return RefreshOutcome()
        if row["used_at"] is not None:
            await _revoke(conn, "id = ?", (row["session_id"],), "refresh token reused")
            return RefreshOutcome(reused=True)
        if row["expires_at"] <= now:
            return RefreshOutcome()
        await conn.execute(
            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", (now, old_hash)
        )
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at, created_at)"
            " VALUES (?, ?, ?, ?)",
            (new_hash, row["session_id"], iso_in(ttl), now),
        )
    return RefreshOutcome(user_id=row["user_id"], session_id=row["session_id"])


async def _revoke(
    conn: Transaction, where: str, params: tuple[str | None, ...], reason: str
) -> None:
    await conn.execute(
        f"UPDATE sessions SET revoked_at = ?, revoked_reason = ?"
        f" WHERE {where} AND revoked_at IS NULL",
        (now_iso(), reason, *params),
    )


async def logout(db: Database, session_id: str, jti: str, jti_expires_at: str) -> None:
    """Revoke one access token (by jti) and its session's refresh family."""
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT OR IGNORE INTO revoked_jtis (jti, expires_at) VALUES (?, ?)",
            (jti, jti_expires_at),
        )
        await _revoke(conn, "id = ?", (session_id,), "logout")


async def revoke_user_sessions(db: Database, user_id: str, *, keep: str | None = None) -> None:
    """Revoke every session of a user (but `keep`): their access tokens stop working too."""
    async with db.transaction() as conn:
        await _revoke(conn, "user_id = ? AND id IS NOT ?", (user_id, keep), "sessions revoked")


async def access_identity(db: Database, user_id: str, session_id: str, jti: str) -> User | None:
    """The user behind an access token, or None if the token, session or user is no longer valid.

    One query: this runs on every authenticated request."""
    row = await db.fetchone(
        f"SELECT {', '.join('u.' + c for c in COLUMNS.split(', '))}"
        " FROM users u JOIN sessions s ON s.id = ? AND s.user_id = u.id"
        " WHERE u.id = ? AND u.is_active = 1 AND s.revoked_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM revoked_jtis WHERE jti = ?)",
        (session_id, user_id, jti),
    )
    return User.from_row(row) if row else None


async def purge_expired(db: Database) -> None:
    """Drop what can no longer be presented: expired revoked jtis, expired refresh tokens."""
    now = now_iso()
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM revoked_jtis WHERE expires_at <= ?", (now,))
        await conn.execute("DELETE FROM refresh_tokens WHERE expires_at <= ?", (now,))
        await conn.execute(
            "DELETE FROM sessions WHERE NOT EXISTS"
            " (SELECT 1 FROM refresh_tokens t WHERE t.session_id = sessions.id)"
        )
