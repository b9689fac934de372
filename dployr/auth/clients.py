"""Who the client is: the socket peer, or the X-Forwarded-For address a trusted proxy names."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dployr.config import Config, ConfigError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
# An IPv6 client holds at least a /64 (SLAAC, RFC 6177): counting its addresses one by one
# would give it 2^64 login attempts.
IPV6_KEY_PREFIX = 64


@dataclass(frozen=True)
class TrustedProxies:
    """The networks whose X-Forwarded-For is believed (`server.trusted_proxies`)."""

    networks: tuple[Network, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> TrustedProxies:
        """The configured CIDRs; none configured: when `proxy.api_domain` is set, the proxy
        runs on this host, so loopback and the address the daemon listens on (a local proxy
        dialling it comes from there); else nobody."""
        cidrs = config.server.trusted_proxies
        if not cidrs:
            if not config.proxy.api_domain:
                return cls()
            return cls(LOOPBACK + _listening_network(config.server.host))
        networks = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                raise ConfigError(
                    f"server.trusted_proxies: {cidr!r} is not an IP network"
                ) from None
        return cls(tuple(networks))

    def __contains__(self, address: Address) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def _listening_network(host: str) -> tuple[Network, ...]:
    address = parse_address(host)
    if address is None or address.is_unspecified or address.is_loopback:
        return ()  # a name, 0.0.0.0 or ::: the proxy dials loopback (Router._daemon_address)
    return (ipaddress.ip_network(address),)


@dataclass(frozen=True)
class Client:
    address: str  # the client's address as text; the raw peer when it is not an IP address
    key: str  # what rate limits count under: "ip:<IPv4>" or "ip:<IPv6 /64>"


def parse_address(text: str) -> Address | None:
    """An address from a peer name or an X-Forwarded-For entry (bare, `[v6]`, `[v6]:port` or
    `v4:port`); an IPv4-mapped IPv6 address is its IPv4 address; None when it is not one."""
    text = text.strip()
    if text.startswith("["):
        text, bracket, rest = text[1:].partition("]")
        if not bracket or not (rest == "" or (rest[:1] == ":" and _is_port(rest[1:]))):
            return None
    elif text.count(":") == 1:  # one colon: IPv4 with a port
        text, _, port = text.partition(":")
        if not _is_port(port):
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5


def forwarded_client(peer: Address, forwarded: Iterable[str], trusted: TrustedProxies) -> Address:
    """The client behind `peer`: when the peer is a trusted proxy, X-Forwarded-For is read
    from the right (each proxy appends who it talked to), skipping trusted hops; the first
    untrusted address is the client. A malformed entry stops the walk at the last good
    address: what lies left of it was written by someone we cannot vouch for."""
    if peer not in trusted:
        return peer  # anyone can send the header; only a trusted proxy's copy counts
    entries: Sequence[str] = [part for header in forwarded for part in header.split(",")]
    client = peer
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:
            break
        client = address
        if address not in trusted:
            break
    return client


def limit_key(address: Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((address, IPV6_KEY_PREFIX), strict=False)
        return f"ip:{network}"
    return f"ip:{address}"


def identify(peer: str | None, forwarded: Iterable[str], trusted: TrustedProxies) -> Client:
    """The client of a request whose socket peer is `peer` (aiohttp's `request.remote`)."""
    address = parse_address(peer) if peer else None
    if address is None:  # a unix socket, or no peer name at all: nothing to believe
        name = peer or "unknown"
        return Client(name, f"ip:{name}")
    client = forwarded_client(address, forwarded, trusted)
    return Client(str(client), limit_key(client))
