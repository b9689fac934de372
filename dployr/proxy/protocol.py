"""The proxy edge. The route table is the desired state: each backend renders its whole
config from all routes and their upstreams and applies it all or nothing (SPEC §5).

Caddy (`proxy/caddy.py`), nginx (`proxy/nginx.py`) and `NoProxy` (the `none` backend)
implement `Proxy`; `make_proxy` in `proxy/__init__.py` picks one from `proxy.backend`."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

# The upstream key of the daemon's own API (proxy.api_domain); service ids are svc_…
DAEMON = "dployr"


@dataclass(frozen=True)
class Route:
    id: str
    domain: str  # validated and lower-cased (proxy/domains.py): safe in any config syntax
    path_prefix: str  # "/" or a validated prefix such as "/api"
    tls: str  # "auto" | "off"
    service_id: str | None  # None: the daemon's own API (proxy.api_domain)
    port: int | None = None  # the app's port this route reaches; None: the service's port

    @property
    def upstream_key(self) -> str:
        return self.service_id or DAEMON


# What each route's target answers on now: upstream key → "host:port" addresses (a loopback
# port for docker, `tasks.<service>:<port>` for swarm). A key with no addresses (a stopped
# service, one not live yet) is answered 503 by the proxy.
Upstreams = Mapping[str, Sequence[str]]


class Proxy(Protocol):
    name: str  # "caddy" | "nginx" | "none"

    async def apply(self, routes: Sequence[Route], upstreams: Upstreams) -> None:
        """Make the proxy serve exactly `routes`: render, validate, apply. All or nothing: on
        any failure raise ProxyError (the proxy's message in details) with the previous
        config still serving."""

    async def problem(self) -> str | None:
        """None when the proxy can be driven now, else why not (for /health/ready)."""

    def https(self) -> str:
        """How `tls: auto` routes are served, for /api/v1/info: "automatic" (Caddy, ACME),
        "internal" (Caddy's local CA), "certificates" (nginx: HTTPS where a certificate is
        present, else plain HTTP), "off" (none)."""


class OverlayProxy(Proxy, Protocol):
    """A proxy that runs where the upstreams are and joins their networks to reach them (the
    swarm proxy, proxy/swarm.py: a Swarm service on each owner's overlay)."""

    async def ensure(self, networks: Collection[str]) -> None:
        """Run, on exactly these networks, and answer; ProxyError (or RuntimeFailure) else."""

    async def remove(self) -> None:
        """Stop running: no upstream of it is left."""


class NoProxy:
    """`backend = "none"`: routes are kept in the database, nothing is written (ports only)."""

    name = "none"

    async def apply(self, routes: Sequence[Route], upstreams: Upstreams) -> None:
        return None

    async def problem(self) -> str | None:
        return None

    def https(self) -> str:
        return "off"
