"""A service's volumes (SPEC §14): one row each, named by owner, service name and volume name,
so that a kept volume is found again when the same owner deploys a service of that name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dployr.ids import new_id, now_iso
from dployr.runtime.protocol import Mount
from dployr.store.db import Database, Row, Transaction

_COLUMNS = (
    "id, owner_id, service_name, name, service_id, origin_service_id, target, path, created_at"
)


@dataclass(frozen=True)
class Volume:
    id: str
    owner_id: str
    service_name: str
    name: str
    service_id: str | None  # None: kept after its service was deleted
    origin_service_id: str  # its storage is named after this service (runtime.protocol.Mount)
    target: str  # the target its storage is on
    path: str  # where the service's latest release mounts it
    created_at: str

    @classmethod
    def from_row(cls, row: Row) -> Volume:
        return cls(*row)

    @property
    def mount(self) -> Mount:
        return Mount(self.name, self.path, self.origin_service_id)


async def attach(
    conn: Transaction,
    owner_id: str,
    service_id: str,
    service_name: str,
    target: str,
    wanted: Sequence[dict[str, str]],
) -> None:
    """Record the volumes a new release names: a new one is made, the service's own or a
    kept one of the same service name is (re)attached, with the path the release gives."""
    for volume in wanted:
        await conn.execute(
            f"INSERT INTO volumes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (owner_id, service_name, name) DO UPDATE"
            " SET service_id = excluded.service_id, path = excluded.path",
            (
                new_id("vol"),
                owner_id,
                service_name,
                volume["name"],
                service_id,
                service_id,
                target,
                volume["path"],
                now_iso(),
            ),
        )


async def of_service(db: Database, service_id: str) -> list[Volume]:
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM volumes WHERE service_id = ? ORDER BY name", (service_id,)
    )
    return [Volume.from_row(r) for r in rows]


async def named(db: Database, owner_id: str, service_name: str) -> list[Volume]:
    """The volumes a deployment of `service_name` gets: the service's own, or kept ones."""
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM volumes WHERE owner_id = ? AND service_name = ? ORDER BY name",
        (owner_id, service_name),
    )
    return [Volume.from_row(r) for r in rows]


async def of_services(db: Database, service_ids: Sequence[str]) -> dict[str, list[Volume]]:
    """Each listed service's volumes, in one query (a page of services is at most 100)."""
    found: dict[str, list[Volume]] = {service_id: [] for service_id in service_ids}
    if not service_ids:
        return found
    marks = ", ".join("?" * len(service_ids))
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM volumes WHERE service_id IN ({marks}) ORDER BY name",
        list(service_ids),
    )
    for row in rows:
        volume = Volume.from_row(row)
        assert volume.service_id is not None
        found[volume.service_id].append(volume)
    return found


async def mounts(
    db: Database, service_id: str, named: Sequence[dict[str, str]]
) -> tuple[Mount, ...]:
    """The storage of each volume a release names, mounted at the release's own paths (a
    rollback mounts them where that release did)."""
    if not named:
        return ()
    by_name = {v.name: v for v in await of_service(db, service_id)}
    return tuple(
        Mount(v["name"], v["path"], by_name[v["name"]].origin_service_id)
        for v in named
        if v["name"] in by_name
    )


async def keep(conn: Transaction, service_id: str) -> None:
    """The service goes but its volumes stay, for a later service of the same name."""
    await conn.execute("UPDATE volumes SET service_id = NULL WHERE service_id = ?", (service_id,))


async def forget(conn: Transaction, volume_ids: Sequence[str]) -> None:
    await conn.executemany("DELETE FROM volumes WHERE id = ?", [(v,) for v in volume_ids])
