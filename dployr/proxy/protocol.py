"""The proxy edge: the pipeline points a service's routes at its new instance through this.

Caddy and nginx backends (SPEC §5) plug in here; `NoProxy` is the `none` backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Upstream:
    service_id: str
    host_port: int  # the live instance's loopback port


class Proxy(Protocol):
    name: str

    async def switch(self, upstream: Upstream) -> None:
        """Send the service's routes to `upstream`; validate and reload, or raise ProxyError
        with the previous config still serving."""

    async def remove(self, service_id: str) -> None:
        """Drop the service's routes from the proxy config."""


class NoProxy:
    """`backend = "none"`: routes are kept in the database, nothing is written (ports only)."""

    name = "none"

    async def switch(self, upstream: Upstream) -> None:
        return None

    async def remove(self, service_id: str) -> None:
        return None
