"""Links: a database's connection URL as a secret env var of a service, with the host and port
that service reaches it at (the network alias on docker, the loopback port elsewhere)."""

from __future__ import annotations

import logging

from dployr.databases.engines import ENGINE
from dployr.databases.manager import Databases
from dployr.errors import NotFound
from dployr.pipeline import control
from dployr.pipeline.deployer import Deployer
from dployr.store import databases as store
from dployr.store import services
from dployr.store.databases import Link, ManagedDatabase
from dployr.store.services import Service

_LOGGER = logging.getLogger(__name__)
DEFAULT_ENV = "DATABASE_URL"


def url_for(databases: Databases, record: ManagedDatabase, target: str) -> str:
    """The URL a service on `target` connects with: a docker container or a swarm task
    reaches the database by its name on the owner's network (the engine's own port); a
    systemd or process service runs on this host and reaches its loopback port."""
    engine = ENGINE[record.engine]
    spec = databases.spec_of(record)
    if target in ("docker", "swarm"):  # a container on the owner's network (or its overlay)
        return engine.url(spec, record.name, engine.port)
    return engine.url(spec, "127.0.0.1", record.host_port)


async def link(
    databases: Databases,
    deployer: Deployer,
    record: ManagedDatabase,
    service: Service,
    env: str,
    *,
    apply: bool,
) -> tuple[Link, bool]:
    """Set the service's `env` to the database's URL (secret); (the link, whether it is new).
    `apply`: restart the running service now so that it runs with it (a failed restart is the
    call's error; the link stays made, as `env ?apply=true` keeps the variable it set)."""
    url = url_for(databases, record, service.target)
    async with databases.db.transaction() as conn:
        made = await store.set_link(conn, record.id, service.id, env, url, databases.box)
    # A stopped service stays stopped: it gets the URL when it is started.
    if apply and service.current_deployment_id and service.desired_state == "running":
        await control.restart_service(deployer, service)
    return made


async def unlink(databases: Databases, record: ManagedDatabase, service_id: str) -> None:
    """Remove the link and the env var it set (the service runs with it until it restarts)."""
    async with databases.db.transaction() as conn:
        if not await store.remove_link(conn, record.id, service_id):
            raise NotFound("This database is not linked to that service")


async def refresh_links(databases: Databases, record: ManagedDatabase) -> None:
    """Set every link's env value again (the database got a new host port): services on this
    host's loopback get the new URL at their next start or deploy."""
    async with databases.db.transaction() as conn:
        for found, target in await store.links_with_targets(conn, record.id):
            url = url_for(databases, record, target)
            await services.upsert_env(conn, found.service_id, found.env, url, True, databases.box)
    _LOGGER.info("database %s: links' URLs set for port %s", record.name, record.host_port)
