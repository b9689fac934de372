"""The SSRF guard: a webhook URL is http(s) and every address its host resolves to is public."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

# The same address rules as git remotes (sources/validate.py): metadata and link-local never,
# loopback/private/reserved unless allowed.
from dployr.sources.validate import METADATA, IPAddress, is_private, with_embedded_ipv4

SCHEMES = ("http", "https")


class AddressRefused(Exception):
    """The URL is not a target the daemon may send to; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL: the host to name (Host header, TLS) and the addresses to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or AddressRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise AddressRefused(f"is not a valid URL ({err})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise AddressRefused("must be an http:// or https:// URL")
    host = parts.hostname or ""
    if not host:
        raise AddressRefused("has no host")
    if parts.username is not None or parts.password is not None:
        raise AddressRefused("must not carry credentials (user:password@)")
    return scheme, host, port or (443 if scheme == "https" else 80)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host stands for. getaddrinfo runs in the loop's executor, and it
    reads numeric forms the way a client would (2130706433, 0x7f.1 → 127.0.0.1)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise AddressRefused("host does not resolve") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def check_url(url: str, allow_private: bool) -> Target:
    """Parse, resolve and check: the Target to connect to, or AddressRefused."""
    scheme, host, port = parse_url(url)
    addresses = await resolve(host, port)
    if not addresses:
        raise AddressRefused("host does not resolve")
    for address in addresses:
        reason = refusal(address, allow_private)
        if reason is not None:
            raise AddressRefused(reason)
    unique = tuple(dict.fromkeys(str(a) for a in addresses))
    return Target(url, scheme, host, port, unique)


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why this address is not allowed, or None when it is."""
    candidates = with_embedded_ipv4(address)
    if any(a in METADATA or a.is_link_local for a in candidates):
        return "resolves to a link-local or metadata address"
    if not allow_private and any(is_private(a) for a in candidates):
        return (
            "resolves to a loopback, private or reserved address"
            " (set webhooks.allow_private to allow)"
        )
    return None
