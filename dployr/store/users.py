"""Users: accounts, roles, profile changes."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from dployr.errors import Conflict, Forbidden
from dployr.ids import new_id, now_iso
from dployr.store.db import Database, Row, Transaction
from dployr.store.paging import Page, PageRequest, like_escape

COLUMNS = "id, name, username, email, role, is_active, created_at, updated_at, last_login"


@dataclass(frozen=True)
class User:
    id: str
    name: str
    username: str | None
    email: str
    role: str
    is_active: bool
    created_at: str
    updated_at: str
    last_login: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def from_row(cls, row: Row) -> User:
        return cls(
            id=row["id"],
            name=row["name"],
            username=row["username"],
            email=row["email"],
            role=row["role"],
            is_active=bool(row["is_active"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            last_login=row["last_login"],
        )


def _conflict(err: sqlite3.IntegrityError) -> Conflict:
    field = "username" if "username" in str(err) else "email"
    return Conflict(f"A user with this {field} already exists", details={"field": field})


async def create_user(
    db: Database,
    *,
    name: str,
    email: str,
    password_hash: str,
    username: str | None = None,
    role: str | None = None,
    only_if_first: bool = False,
) -> User:
    """Insert a user; with role None the first user becomes admin and later ones users.

    only_if_first: refuse (403) unless this is the first user."""
    now = now_iso()
    user_id = new_id("usr")
    async with db.transaction() as conn:
        rows = await conn.execute_fetchall("SELECT EXISTS (SELECT 1 FROM users)")
        has_users = bool(next(iter(rows))[0])
        if only_if_first and has_users:
            raise Forbidden("Registration is closed; ask an admin to create your account")
        if role is None:
            role = "user" if has_users else "admin"
        try:
            await conn.execute(
                "INSERT INTO users (id, name, username, email, password_hash, role, is_active,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (user_id, name, username, email, password_hash, role, now, now),
            )
        except sqlite3.IntegrityError as err:
            raise _conflict(err) from None
    user = await get_user(db, user_id)
    assert user is not None
    return user


async def count_users(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM users"))


async def get_user(db: Database, user_id: str) -> User | None:
    row = await db.fetchone(f"SELECT {COLUMNS} FROM users WHERE id = ?", (user_id,))
    return User.from_row(row) if row else None


async def get_login(db: Database, email: str) -> tuple[User, str] | None:
    """The user with this e-mail and their password hash, for a login check."""
    row = await db.fetchone(
        f"SELECT {COLUMNS}, password_hash FROM users WHERE email = ?",
        (email,),
    )
    return (User.from_row(row), row["password_hash"]) if row else None


async def get_password_hash(db: Database, user_id: str) -> str | None:
    value = await db.fetchval("SELECT password_hash FROM users WHERE id = ?", (user_id,))
    return str(value) if value is not None else None


async def record_login(db: Database, user_id: str) -> None:
    async with db.transaction() as conn:
        await conn.execute("UPDATE users SET last_login = ? WHERE id = ?", (now_iso(), user_id))


async def list_users(
    db: Database, paging: PageRequest, *, role: str | None = None, search: str | None = None
) -> Page[User]:
    where, params = ["1 = 1"], []
    if role:
        where.append("role = ?")
        params.append(role)
    if search:
        where.append(
            "(name LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\' OR username LIKE ? ESCAPE '\\')"
        )
        params += [f"%{like_escape(search)}%"] * 3
    clause = " AND ".join(where)
    total = await db.fetchval(f"SELECT COUNT(*) FROM users WHERE {clause}", params)
    rows = await db.fetchall(
        f"SELECT {COLUMNS} FROM users WHERE {clause}"
        " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
        [*params, paging.per_page, paging.offset],
    )
    return Page([User.from_row(r) for r in rows], int(total), paging)


async def update_user(db: Database, user_id: str, changes: dict[str, object]) -> User:
    """Apply changes to name, username, email, password_hash, role, is_active."""
    allowed = {"name", "username", "email", "password_hash", "role", "is_active"}
    assert set(changes) <= allowed, changes
    if changes:
        sets = ", ".join(f"{column} = ?" for column in changes)
        async with db.transaction() as conn:
            if changes.get("role") == "user" or changes.get("is_active") is False:
                await _keep_an_admin(conn, user_id)
            try:
                await conn.execute(
                    f"UPDATE users SET {sets}, updated_at = ? WHERE id = ?",
                    [*changes.values(), now_iso(), user_id],
                )
            except sqlite3.IntegrityError as err:
                raise _conflict(err) from None
    user = await get_user(db, user_id)
    assert user is not None
    return user


async def delete_user(db: Database, user_id: str) -> None:
    """Delete a user and, by cascade, their projects, credentials, tokens and sessions. Refused
    (409) while they own a service or a database: its containers, images and data would stay
    with no owner, so those are deleted first, each through the API that removes what it runs."""
    async with db.transaction() as conn:
        await _keep_an_admin(conn, user_id)
        # Services and databases go through their own DELETE, which removes what they run and
        # keep (containers, images, volumes, backups): a cascade would leave those on the host
        # with no row to reach them.
        for table in ("services", "databases"):
            rows = await conn.execute_fetchall(
                f"SELECT COUNT(*) FROM {table} WHERE owner_id = ?",
                (user_id,),
            )
            owned = next(iter(rows))[0]
            if owned:
                raise Conflict(
                    f"This account still owns {owned} {table[:-1]}(s); delete them first "
                    f"(DELETE /api/v1/{table}/{{id}}), then the account",
                    details={"reason": f"owns {table}", table: owned},
                )
        await conn.execute("DELETE FROM users WHERE id = ?", (user_id,))


async def _keep_an_admin(conn: Transaction, user_id: str) -> None:
    """Refuse a change that would leave no active admin."""
    rows = await conn.execute_fetchall(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND is_active = 1 AND id != ?",
        (user_id,),
    )
    others = next(iter(rows))[0]
    target = await conn.execute_fetchall(
        "SELECT 1 FROM users WHERE id = ? AND role = 'admin' AND is_active = 1", (user_id,)
    )
    if list(target) and others == 0:
        raise Conflict("This is the last active admin; make another user admin first")
