"""Routes made and removed through the API (the proxy first, then the table); free domains."""

from __future__ import annotations

from dployr.errors import Conflict, ValidationError
from dployr.pipeline.deployer import Deployer
from dployr.proxy.domains import default_tls, normalize_domain
from dployr.store import routes as stored
from dployr.store.routes import RouteRecord
from dployr.store.services import Service


def reserved(deployer: Deployer, domain: str) -> Conflict | None:
    """A 409 when `domain` is `proxy.api_domain`: the whole name is the daemon's own API."""
    api = deployer.router.api_route()
    if api is None or _canonical(api.domain) != domain:
        return None
    return Conflict(
        f"{domain} is the daemon's own API (proxy.api_domain); no route may take it",
        details={"field": "domain", "reason": "reserved for the daemon's API (proxy.api_domain)"},
    )


def _canonical(domain: str) -> str:
    try:
        return normalize_domain(domain)
    except ValidationError:  # the config's own check names it; here it only must not match
        return domain.lower()


async def create_route(
    deployer: Deployer,
    service: Service,
    domain: str,
    path_prefix: str,
    tls: str | None,
    port: int | None,
) -> RouteRecord:
    """Route (domain, path_prefix) to `service`: the proxy takes it, then the table holds it.
    A proxy refusal (502) leaves both as they were; a taken key is a 409 before either."""
    await _check_port(deployer, service, port)
    problem = reserved(deployer, domain)
    if problem is not None:
        raise problem
    if await stored.route_at(deployer.db, domain, path_prefix) is not None:
        raise stored.taken(domain, path_prefix)
    if await stored.domain_holder(deployer.db, domain, service.owner_id) is not None:
        raise stored.held(domain)
    route = stored.new_route(service.id, domain, path_prefix, tls or default_tls(domain), port)
    async with deployer.router.changing(add=[route]), deployer.db.transaction() as conn:
        return await stored.insert_route(conn, route)


async def _check_port(deployer: Deployer, service: Service, port: int | None) -> None:
    """A service's instance listens on one port, its latest deployment's: a route reaches
    that one. A worker (port null) takes no traffic, so it takes no route."""
    listens = await stored.service_port(deployer.db, service.id)
    if listens is None:
        raise ValidationError(
            "service_id", "is a worker (port null): it takes no traffic, so it has no route"
        )
    if port is not None and port != listens:
        raise ValidationError(
            "port", f"must be the service's port ({listens}): its instance listens on that one"
        )


async def delete_route(deployer: Deployer, record: RouteRecord) -> None:
    """The proxy stops serving the route, then its row goes (with route.deleted)."""
    async with (
        deployer.router.changing(remove={record.route.id}),
        deployer.db.transaction() as conn,
    ):
        await stored.delete_routes(conn, [record])


async def check_domain_free(
    deployer: Deployer,
    domain: str,
    *,
    owner_id: str,
    service_name: str,
) -> None:
    """A deployment's `domain` is routed (at "/") to its service when it goes live: a 409 at
    request time when another service holds it, or when it is the daemon's own."""
    problem = reserved(deployer, domain)
    if problem is not None:
        raise problem
    if await stored.domain_holder(deployer.db, domain, owner_id) is not None:
        raise stored.held(domain)
    holder = await stored.route_at(deployer.db, domain, "/")
    if holder is None or (holder.owner_id == owner_id and holder.service_name == service_name):
        return
    raise Conflict(
        f"{domain} is routed to another service already",
        details={"field": "domain", "reason": "routed to another service (delete that route)"},
    )
