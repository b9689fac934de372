"""Credentials: a deploy key or a token for private repositories, a login to an image registry;
encrypted, never returned."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dployr.crypto import SecretBox
from dployr.errors import DployrError
from dployr.ids import new_id, now_iso
from dployr.store.db import Database, Row
from dployr.store.paging import Page, PageRequest

COLUMNS = "id, owner_id, type, name, secret_enc, created_at"


@dataclass(frozen=True)
class Credential:
    id: str
    owner_id: str
    type: str  # deploy_key | token (git sources) | registry (image pushes, SPEC §15)
    name: str
    secret_enc: str
    created_at: str

    @classmethod
    def from_row(cls, row: Row) -> Credential:
        return cls(*row)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner_id": self.owner_id,
            "type": self.type,
            "name": self.name,
            "created_at": self.created_at,
        }


async def create_credential(
    db: Database, owner_id: str, type_: str, name: str, secret_enc: str
) -> Credential:
    credential = Credential(new_id("crd"), owner_id, type_, name, secret_enc, now_iso())
    async with db.transaction() as conn:
        await conn.execute(
            f"INSERT INTO credentials ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (
                credential.id,
                owner_id,
                type_,
                name,
                secret_enc,
                credential.created_at,
            ),
        )
    return credential


async def get_credential(
    db: Database, credential_id: str, owner_id: str | None
) -> Credential | None:
    row = await db.fetchone(
        f"SELECT {COLUMNS} FROM credentials WHERE id = ? AND (? IS NULL OR owner_id = ?)",
        (credential_id, owner_id, owner_id),
    )
    return Credential.from_row(row) if row else None


async def list_credentials(
    db: Database, paging: PageRequest, owner_id: str | None
) -> Page[Credential]:
    params = {"owner": owner_id}
    where = ":owner IS NULL OR owner_id = :owner"
    total = await db.fetchval(f"SELECT COUNT(*) FROM credentials WHERE {where}", params)
    rows = await db.fetchall(
        f"SELECT {COLUMNS} FROM credentials WHERE {where} ORDER BY created_at DESC, rowid DESC"
        f" LIMIT {paging.per_page} OFFSET {paging.offset}",
        params,
    )
    return Page([Credential.from_row(r) for r in rows], int(total), paging)


async def delete_credential(db: Database, credential_id: str) -> None:
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM credentials WHERE id = ?", (credential_id,))


@dataclass(frozen=True)
class RegistryLogin:
    username: str
    password: str

    def __repr__(self) -> str:  # never the password in a log or a traceback
        return f"RegistryLogin(username={self.username!r})"


def registry_secret(username: str, password: str) -> str:
    """What a registry credential keeps (encrypted): its two fields as JSON."""
    return json.dumps({"username": username, "password": password})


async def registry_login(db: Database, box: SecretBox, credential_id: str) -> RegistryLogin:
    """The username and password of a registry credential, whoever owns it: for the operator's
    `[swarm] registry_credential_id`, which the config names (no request, so no owner check)."""
    credential = await get_credential(db, credential_id, None)
    if credential is None:
        raise DployrError(f"credential {credential_id} ([swarm] registry_credential_id) not found")
    if credential.type != "registry":
        raise DployrError(
            f"credential {credential_id} ([swarm] registry_credential_id) is a {credential.type},"
            " not a registry login"
        )
    data = json.loads(box.decrypt(credential.secret_enc))
    return RegistryLogin(data["username"], data["password"])
