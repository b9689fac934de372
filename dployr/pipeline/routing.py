"""The router: the one writer of the proxy config. Every change renders the whole route table
(plus the change being made) and applies it through the proxy, all or nothing; the caller
commits the change to the table only after the proxy took it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Mapping, Sequence

from dployr.config import Config
from dployr.errors import DployrError
from dployr.proxy.protocol import DAEMON, Proxy, Route
from dployr.store import routes as stored
from dployr.store.db import Database
from dployr.tasks import run_to_end

_LOGGER = logging.getLogger(__name__)
API_ROUTE_ID = "rte_api"


class Router:
    def __init__(self, db: Database, proxy: Proxy, config: Config) -> None:
        self.db = db
        self.proxy = proxy
        self.config = config
        self._lock = asyncio.Lock()  # one apply at a time, each from the table as it is then
        self._applied: object = None  # what the proxy serves now, when known

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

    async def _table(self) -> tuple[list[Route], dict[str, Sequence[str]]]:
        routes = [record.route for record in await stored.all_routes(self.db)]
        upstreams: dict[str, Sequence[str]] = dict(await stored.live_upstreams(self.db))
        api = self.api_route()
        if api is not None:
            routes.append(api)
            upstreams[DAEMON] = [self._daemon_address()]
        return routes, upstreams

    async def sync(self) -> None:
        """Render and apply the table as it is (start, after a stop, after a delete)."""
        async with self._lock:
            routes, upstreams = await self._table()
            await run_to_end(self._apply(routes, upstreams, force=True))

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
        is applied again, so the proxy never serves what the database does not say."""
        async with self._lock:
            routes, upstreams = await self._table()
            routes = [r for r in routes if r.id not in remove]
            _refuse_taken(routes, add)
            routes += add
            upstreams.update(point or {})
            try:
                await run_to_end(self._apply(routes, upstreams))
            except asyncio.CancelledError:  # applied (or not); the caller commits nothing
                await run_to_end(self._restore())
                raise
            try:
                yield
            except BaseException:
                await run_to_end(self._restore())
                raise

    async def _apply(
        self, routes: list[Route], upstreams: dict[str, Sequence[str]], force: bool = False
    ) -> None:
        """Apply, unless the proxy serves exactly this already: a service without routes
        switches without touching the proxy (no reload, no closed keep-alive connections)."""
        routes.sort(key=lambda r: (r.domain, r.path_prefix))
        used = {r.upstream_key for r in routes}
        wanted = (routes, {k: tuple(v) for k, v in sorted(upstreams.items()) if k in used})
        if wanted == self._applied and not force:
            return
        self._applied = None  # unknown while applying: a failed apply may leave either
        await self.proxy.apply(routes, upstreams)
        self._applied = wanted

    async def _restore(self) -> None:
        routes, upstreams = await self._table()
        try:
            await self._apply(routes, upstreams)
        except DployrError as err:
            _LOGGER.warning("could not re-apply the route table: %s", err.message)


def _refuse_taken(routes: Sequence[Route], add: Sequence[Route]) -> None:
    """A 409 before the proxy sees two routes for one (domain, path_prefix): the table's
    UNIQUE would refuse the row anyway, and a proxy given both would pick one, or refuse."""
    seen = {(r.domain, r.path_prefix) for r in routes}
    for route in add:
        key = (route.domain, route.path_prefix)
        if key in seen:
            raise stored.taken(*key)
        seen.add(key)
