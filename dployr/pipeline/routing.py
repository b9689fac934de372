"""The router: the one writer of the proxy config. Every change renders the whole route table
(plus the change being made) and applies it through the proxy, all or nothing; the caller
commits the change to the table only after the proxy took it.

The table is split in two (SPEC §15): the routes of services whose live release is on the
swarm target go to the swarm proxy (it reaches their tasks on the owners' overlays), the rest
to the host proxy `proxy.backend` names. Neither ever sees the other's routes, and the swarm
proxy is only started (and Docker only asked about it) once a swarm service has a route."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass

from dployr.config import Config
from dployr.errors import DployrError
from dployr.proxy.protocol import DAEMON, OverlayProxy, Proxy, Route
from dployr.runtime.swarm_names import overlay_network
from dployr.store import routes as stored
from dployr.store.db import Database
from dployr.tasks import run_to_end

_LOGGER = logging.getLogger(__name__)
API_ROUTE_ID = "rte_api"
# What swarm_names.upstream() makes: a name only the overlay's DNS answers (every task of a
# service), so only the swarm proxy can dial it.
OVERLAY_PREFIX = "tasks."


@dataclass
class Table:
    routes: list[Route]
    upstreams: dict[str, Sequence[str]]
    swarm: dict[str, str]  # the services the swarm proxy serves: service id → owner id


class Router:
    def __init__(
        self, db: Database, proxy: Proxy, config: Config, swarm: OverlayProxy | None = None
    ) -> None:
        self.db = db
        self.proxy = proxy  # the host proxy
        self.swarm = swarm  # the swarm proxy (None: swarm routes are served by nothing)
        self.config = config
        self._lock = asyncio.Lock()  # one apply at a time, each from the table as it is then
        self._applied: object = None  # what the host proxy serves now, when known
        self._swarm_applied: object = None  # the same for the swarm proxy
        self._swarm_up = False  # ensure() was called: when no swarm service is left, remove it

    def api_route(self) -> Route | None:
        """`proxy.api_domain`: the daemon's own API behind the proxy, with TLS."""
        domain = self.config.proxy.api_domain
        if not domain:
            return None
        tls = "off" if domain == "localhost" or domain.endswith(".localhost") else "auto"
        return Route(API_ROUTE_ID, domain, "/", tls, None)

    def _daemon_address(self) -> str:
        host = self.config.server.host
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self.config.server.port}"

    async def _table(self) -> Table:
        routes = [record.route for record in await stored.all_routes(self.db)]
        upstreams: dict[str, Sequence[str]] = dict(await stored.live_upstreams(self.db))
        api = self.api_route()
        if api is not None:
            routes.append(api)
            upstreams[DAEMON] = [self._daemon_address()]
        return Table(routes, upstreams, await stored.swarm_services(self.db))

    async def sync(self) -> None:
        """Render and apply the table as it is (start, after a stop, after a delete)."""
        async with self._lock:
            await run_to_end(self._apply(await self._table(), force=True, each=True))

    async def prepare_swarm(self, owner_id: str) -> None:
        """Before a swarm release of `owner_id` goes live: a running swarm proxy joins this
        owner's overlay too. Joining a network replaces the proxy's task (docs/decisions.md,
        "Swarm proxy"): better before the switch than at it. One not running yet is started
        by the switch, when a route needs it."""
        if self.swarm is None or not self._swarm_up:
            return
        async with self._lock:
            table = await self._table()
            owners = {*table.swarm.values(), owner_id}
            self._swarm_up = True
            await self.swarm.ensure({overlay_network(self.config, o) for o in owners})

    @contextlib.asynccontextmanager
    async def changing(
        self,
        *,
        add: Sequence[Route] = (),
        remove: Collection[str] = (),
        point: Mapping[str, Sequence[str]] | None = None,
    ) -> AsyncIterator[None]:
        """Apply the table with routes added, routes (by id) removed and services pointed at
        new upstreams; then the caller commits the same change to the database inside the
        block. Nothing else applies in between. Should the caller fail, the table as committed
        is applied again, so the proxy never serves what the database does not say.

        A service pointed at overlay names (`swarm_names.upstream`) is the swarm proxy's from
        then on, one pointed at loopback addresses the host proxy's; pointed at nothing (a
        stop), it stays with the proxy its live release has."""
        async with self._lock:
            table = await self._table()
            table.routes = [r for r in table.routes if r.id not in remove]
            _refuse_taken(table.routes, add)
            table.routes += add
            table.upstreams.update(point or {})
            await self._move(table, point or {})
            try:
                await run_to_end(self._apply(table))
            except BaseException:
                # Cancelled: applied (or not), and the caller commits nothing. Failed: one
                # proxy may have taken its part before the other refused hers.
                await run_to_end(self._restore())
                raise
            try:
                yield
            except BaseException:
                await run_to_end(self._restore())
                raise

    async def _move(self, table: Table, point: Mapping[str, Sequence[str]]) -> None:
        """Which proxy each pointed service belongs to from now on (see `changing`)."""
        joining = set()
        for service_id, addresses in point.items():
            if addresses and all(a.startswith(OVERLAY_PREFIX) for a in addresses):
                joining.add(service_id)
            elif addresses:
                table.swarm.pop(service_id, None)
        if joining - table.swarm.keys():
            table.swarm.update(await stored.owners_of(self.db, joining - table.swarm.keys()))

    async def _apply(self, table: Table, force: bool = False, each: bool = False) -> None:
        """Apply each proxy its part, unless it serves exactly that already: a service without
        routes switches without touching a proxy (no reload, no closed keep-alive connections).
        The swarm proxy first: a service moving to it is served there before the host's
        config lets it go. `each` (a sync, a restore): the host proxy gets its part even when
        the swarm proxy failed (an engine that is down), then that failure is raised."""
        routes = sorted(table.routes, key=lambda r: (r.domain, r.path_prefix))
        on_swarm = [r for r in routes if r.service_id in table.swarm]
        failure = None
        try:
            await self._apply_swarm(on_swarm, table, force)
        except DployrError as err:
            if not each:
                raise
            failure = err
        on_host = [r for r in routes if r.service_id not in table.swarm]
        wanted = _wanted(on_host, table.upstreams)
        if wanted != self._applied or force:
            self._applied = None  # unknown while applying: a failed apply may leave either
            await self.proxy.apply(on_host, wanted[1])
            self._applied = wanted
        if failure is not None:
            raise failure

    async def _apply_swarm(self, routes: list[Route], table: Table, force: bool) -> None:
        """The swarm proxy runs while a swarm service has a route, on the overlays of the
        owners of swarm services: one without a route (a worker) never takes the ports."""
        if self.swarm is None:
            return
        if not routes:
            if self._swarm_up:  # the last swarm route (or service) is gone
                self._swarm_applied = None
                await self.swarm.remove()
                self._swarm_up = False  # only now: a failed removal is tried again
            elif force:
                # A sync (the start): one left by a daemon killed before its first swarm route
                # was committed goes too. No swarm here, or another agent's: nothing to do.
                with contextlib.suppress(DployrError):
                    await self.swarm.remove()
            return
        networks = sorted({overlay_network(self.config, o) for o in table.swarm.values()})
        wanted = (_wanted(routes, table.upstreams), networks)
        if wanted == self._swarm_applied and not force:
            return
        self._swarm_applied, self._swarm_up = None, True
        await self.swarm.ensure(networks)
        await self.swarm.apply(routes, wanted[0][1])
        self._swarm_applied = wanted

    async def _restore(self) -> None:
        table = await self._table()
        try:
            await self._apply(table, each=True)
        except DployrError as err:
            _LOGGER.warning("could not re-apply the route table: %s", err.message)


def _wanted(
    routes: list[Route], upstreams: Mapping[str, Sequence[str]]
) -> tuple[list[Route], dict[str, tuple[str, ...]]]:
    """What a proxy is asked to serve: these routes and the upstreams they use."""
    used = {r.upstream_key for r in routes}
    return routes, {k: tuple(v) for k, v in sorted(upstreams.items()) if k in used}


def _refuse_taken(routes: Sequence[Route], add: Sequence[Route]) -> None:
    """A 409 before the proxy sees two routes for one (domain, path_prefix): the table's
    UNIQUE would refuse the row anyway, and a proxy given both would pick one, or refuse."""
    seen = {(r.domain, r.path_prefix) for r in routes}
    for route in add:
        key = (route.domain, route.path_prefix)
        if key in seen:
            raise stored.taken(*key)
        seen.add(key)
