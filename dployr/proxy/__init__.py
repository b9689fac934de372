"""Reverse proxies: Caddy, nginx, or none; config rendered from the route table."""

from __future__ import annotations

from dployr.config import Config
from dployr.proxy.detect import resolve_backend
from dployr.proxy.protocol import NoProxy, Proxy


async def make_proxy(config: Config) -> Proxy:
    """The backend `proxy.backend` names; `auto` is resolved once, at start (SPEC §12)."""
    backend = await resolve_backend(config.proxy)
    if backend == "caddy":
        from dployr.proxy.caddy import CaddyProxy

        return CaddyProxy(config)
    if backend == "nginx":
        from dployr.proxy.nginx import NginxProxy

        return NginxProxy(config)
    return NoProxy()
