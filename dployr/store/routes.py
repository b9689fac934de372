"""Proxy routes (SPEC §5): one row each, the source of truth the proxy config is rendered from."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from dployr.errors import Conflict
from dployr.ids import new_id, now_iso
from dployr.proxy.protocol import Route
from dployr.runtime.swarm_names import upstream
from dployr.store import events
from dployr.store.db import Database, Row, Transaction
from dployr.store.paging import Page, PageRequest

_COLUMNS = (
    "r.id, r.domain, r.path_prefix, r.tls, r.service_id, r.port, r.created_at, s.owner_id, s.name"
)
_FROM = "FROM routes r JOIN services s ON s.id = r.service_id"
SWARM = "swarm"  # the target whose routes the swarm proxy serves


@dataclass(frozen=True)
class RouteRecord:
    route: Route
    created_at: str
    owner_id: str
    service_name: str

    @classmethod
    def from_row(cls, row: Row) -> RouteRecord:
        return cls(Route(*row[:6]), row[6], row[7], row[8])

    def public(self) -> dict[str, Any]:
        """The route object of /api/v1/proxy/routes."""
        route = self.route
        return {
            "id": route.id,
            "domain": route.domain,
            "service_id": route.service_id,
            "port": route.port,
            "path_prefix": route.path_prefix,
            "tls": route.tls,
            "created_at": self.created_at,
        }

    def on_service(self) -> dict[str, Any]:
        """The entry in the service object's `routes` (SPEC §13)."""
        route = self.route
        return {
            "id": route.id,
            "domain": route.domain,
            "path_prefix": route.path_prefix,
            "tls": route.tls,
            "port": route.port,
        }

    def event_data(self) -> dict[str, Any]:
        return {**self.public(), "route_id": self.route.id, "service_name": self.service_name}


async def all_routes(db: Database) -> list[RouteRecord]:
    rows = await db.fetchall(f"SELECT {_COLUMNS} {_FROM} ORDER BY r.domain, r.path_prefix")
    return [RouteRecord.from_row(r) for r in rows]


async def routes_of_service(db: Database, service_id: str) -> list[RouteRecord]:
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} {_FROM} WHERE r.service_id = ? ORDER BY r.domain, r.path_prefix",
        (service_id,),
    )
    return [RouteRecord.from_row(r) for r in rows]


async def get_route(db: Database, route_id: str, owner_id: str | None) -> RouteRecord | None:
    """The route, when `owner_id` (None: an admin, any owner) owns its service."""
    row = await db.fetchone(
        f"SELECT {_COLUMNS} {_FROM} WHERE r.id = ? AND (? IS NULL OR s.owner_id = ?)",
        (route_id, owner_id, owner_id),
    )
    return RouteRecord.from_row(row) if row else None


async def list_routes(
    db: Database, paging: PageRequest, owner_id: str | None, *, service_id: str | None = None
) -> Page[RouteRecord]:
    """The routes of `owner_id`'s services (None: everyone's), newest first."""
    where = (
        "(:owner IS NULL OR s.owner_id = :owner) AND (:service IS NULL OR r.service_id = :service)"
    )
    params = {"owner": owner_id, "service": service_id}
    total = await db.fetchval(f"SELECT COUNT(*) {_FROM} WHERE {where}", params)
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} {_FROM} WHERE {where} ORDER BY r.created_at DESC, r.rowid DESC"
        f" LIMIT {paging.per_page} OFFSET {paging.offset}",
        params,
    )
    return Page([RouteRecord.from_row(r) for r in rows], int(total), paging)


async def routes_of_services(db: Database, service_ids: list[str]) -> dict[str, list[RouteRecord]]:
    """Each listed service's routes, in one query (a page of services is at most 100)."""
    found: dict[str, list[RouteRecord]] = {service_id: [] for service_id in service_ids}
    if not service_ids:
        return found
    marks = ", ".join("?" * len(service_ids))
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} {_FROM} WHERE r.service_id IN ({marks})"
        " ORDER BY r.domain, r.path_prefix",
        service_ids,
    )
    for row in rows:
        record = RouteRecord.from_row(row)
        found[record.route.upstream_key].append(record)
    return found


async def route_at(db: Database, domain: str, path_prefix: str) -> RouteRecord | None:
    """The route that holds (domain, path_prefix), whoever owns it."""
    row = await db.fetchone(
        f"SELECT {_COLUMNS} {_FROM} WHERE r.domain = ? AND r.path_prefix = ?",
        (domain, path_prefix),
    )
    return RouteRecord.from_row(row) if row else None


async def service_port(db: Database, service_id: str) -> int | None:
    """The port the service's instance listens on: its latest deployment's (None: a worker)."""
    value = await db.fetchval(
        "SELECT json_extract(spec, '$.port') FROM deployments WHERE service_id = ?"
        " ORDER BY number DESC LIMIT 1",
        (service_id,),
    )
    return None if value is None else int(value)


def new_route(service_id: str, domain: str, path_prefix: str, tls: str, port: int | None) -> Route:
    return Route(new_id("rte"), domain, path_prefix, tls, service_id, port)


def taken(domain: str, path_prefix: str) -> Conflict:
    return Conflict(
        f"A route for {domain}{path_prefix if path_prefix != '/' else ''} exists already",
        details={"field": "domain", "reason": "already routed (domain and path_prefix)"},
    )


async def insert_route(conn: Transaction, route: Route) -> RouteRecord:
    """Insert and record `route.created`; (domain, path_prefix) taken → 409 conflict."""
    assert route.service_id is not None
    created_at = now_iso()
    try:
        await conn.execute(
            "INSERT INTO routes (id, service_id, domain, path_prefix, tls, port, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (route.id, route.service_id, route.domain, route.path_prefix, route.tls, route.port,
             created_at),
        )  # fmt: skip
    except sqlite3.IntegrityError:
        raise taken(route.domain, route.path_prefix) from None
    cursor = await conn.execute(
        "SELECT owner_id, name FROM services WHERE id = ?", (route.service_id,)
    )
    found = await cursor.fetchone()
    assert found is not None  # the foreign key held
    record = RouteRecord(route, created_at, found[0], found[1])
    await events.append(conn, "route.created", record.owner_id, record.event_data())
    return record


async def delete_routes(conn: Transaction, records: list[RouteRecord]) -> None:
    """Delete and record `route.deleted` for each."""
    for record in records:
        await conn.execute("DELETE FROM routes WHERE id = ?", (record.route.id,))
        await events.append(conn, "route.deleted", record.owner_id, record.event_data())


async def live_upstreams(db: Database) -> dict[str, list[str]]:
    """Each service's live instance, where one runs: service id → ["127.0.0.1:<port>"], or for
    a release on the swarm target its tasks on the owner's overlay, ["tasks.<service>:<port>"]
    (no host port: only the swarm proxy reaches them). A stopped service's live release has no
    instance (stop clears it), so it has none."""
    rows = await db.fetchall(
        "SELECT s.id, d.host_port, json_extract(d.spec, '$.target'),"
        " json_extract(d.spec, '$.port') FROM services s JOIN deployments d"
        " ON d.id = s.current_deployment_id WHERE d.instance_ref IS NOT NULL"
    )
    found: dict[str, list[str]] = {}
    for service_id, host_port, target, port in rows:
        if target == SWARM and port is not None:
            found[service_id] = [upstream(service_id, int(port))]
        elif host_port is not None:
            found[service_id] = [loopback(host_port)]
    return found


async def swarm_services(db: Database) -> dict[str, str]:
    """The services whose live release is on the swarm target (running or stopped): service id
    → owner id. Their routes are the swarm proxy's (SPEC §15)."""
    rows = await db.fetchall(
        "SELECT s.id, s.owner_id FROM services s JOIN deployments d"
        " ON d.id = s.current_deployment_id WHERE json_extract(d.spec, '$.target') = ?",
        (SWARM,),
    )
    return {row[0]: row[1] for row in rows}


async def owners_of(db: Database, service_ids: Collection[str]) -> dict[str, str]:
    """service id → owner id, for those of `service_ids` that exist."""
    if not service_ids:
        return {}
    ids = list(service_ids)
    rows = await db.fetchall(
        f"SELECT id, owner_id FROM services WHERE id IN ({', '.join('?' * len(ids))})", ids
    )
    return {row[0]: row[1] for row in rows}


async def domain_holder(db: Database, domain: str, owner_id: str) -> RouteRecord | None:
    """A route of ANOTHER owner on `domain`, or on a name a wildcard of either covers: a
    domain belongs to the user who routed it first, paths and subdomains included (else a
    longer path_prefix or a wildcard would take that user's traffic)."""
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} {_FROM} WHERE s.owner_id != ?"
        " AND (r.domain = ? OR r.domain LIKE '*.%' OR ? LIKE '*.%')",
        (owner_id, domain, domain),
    )
    for record in map(RouteRecord.from_row, rows):
        if _overlap(record.route.domain, domain):
            return record
    return None


def _overlap(a: str, b: str) -> bool:
    return (
        a == b
        or (a.startswith("*.") and b.endswith(a[1:]))
        or (b.startswith("*.") and a.endswith(b[1:]))
    )


def held(domain: str) -> Conflict:
    return Conflict(
        f"{domain} (or a name its wildcard covers) is routed by another user",
        details={"field": "domain", "reason": "another user's domain"},
    )


def loopback(host_port: int) -> str:
    return f"127.0.0.1:{host_port}"
