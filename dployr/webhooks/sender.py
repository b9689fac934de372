"""One delivery attempt: connect to the addresses the guard checked, never follow a redirect."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from dployr.webhooks.address import Target

RESPONSE_CAP = 1024  # bytes of a response body kept in the delivery log


@dataclass(frozen=True)
class Response:
    status_code: int | None
    error: str | None
    excerpt: str | None
    latency_ms: int


class PinnedResolver(AbstractResolver):
    """Answers the checked host with the checked addresses: no second lookup between the
    check and the connect, so a DNS answer that changes in between is never used."""

    def __init__(self, target: Target) -> None:
        self._target = target

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self._target.host:
            raise OSError(f"{host} was not checked")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self._target.addresses
        ]

    async def close(self) -> None:
        return None


async def post(target: Target, headers: dict[str, str], body: str, limit_s: float) -> Response:
    """POST the body to the target; any answer is a Response, as is a failure to connect."""
    started = time.monotonic()
    connector = aiohttp.TCPConnector(resolver=PinnedResolver(target), force_close=True)
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=limit_s)
            ) as session,
            session.post(
                target.url, data=body.encode("utf-8"), headers=headers, allow_redirects=False
            ) as resp,
        ):
            raw = await resp.content.read(RESPONSE_CAP)
            return Response(resp.status, None, raw.decode("utf-8", "replace"), _ms(started))
    except TimeoutError:
        return Response(None, f"timed out after {limit_s:g} s", None, _ms(started))
    except (aiohttp.ClientError, OSError, ValueError) as err:
        return Response(None, _describe(err), None, _ms(started))


def _describe(err: Any) -> str:
    return f"{type(err).__name__}: {err}"[:500]


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
