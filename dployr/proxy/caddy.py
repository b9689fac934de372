"""Caddy: the whole route table as one Caddyfile, loaded through the admin API, then persisted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from dployr.config import Config, ProxyConfig
from dployr.errors import ProxyError
from dployr.proxy.detect import UNIX, admin_session, caddy_problem
from dployr.proxy.protocol import Route, Upstreams
from dployr.render import render

_LOGGER = logging.getLogger(__name__)
TEMPLATE = "Caddyfile.j2"
LOAD_TIMEOUT = 30.0  # Caddy provisions the new config before it answers; certificates come later
# A request whose upstream refuses the connection (at the instant of a switch, an instance
# restarting) is retried for this long before it is answered 502 (SPEC §4.2: lose no request).
TRY_DURATION = "3s"
TRY_INTERVAL = "100ms"
# Idle connections to an upstream are closed by Caddy before the app would close them (uvicorn
# and Node wait 5 s, gunicorn 2 s): a POST sent on a connection the app is closing is a 502.
UPSTREAM_IDLE = "1500ms"
# "host:port": a name, an IPv4 address or a bracketed IPv6 address. Anything else (a space, a
# brace, a quote) could change the Caddyfile's structure, so it never reaches the template.
# Linux ≥ 5.14: 1 moves connections queued on a closing SO_REUSEPORT socket to its successor.
# Caddy 2.6 binds new sockets at every load and closes the old ones: with 0, a connection
# arriving at that instant can be refused (docs/decisions.md, "What a /load does to traffic").
MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")
_UPSTREAM = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}\Z")


@dataclass(frozen=True)
class Handler:
    """One `handle` block of a site: what a path prefix gets."""

    name: str  # the named matcher, r0, r1, …
    paths: tuple[str, ...]  # quoted path patterns; () is the site's catch-all
    upstreams: tuple[str, ...] = ()  # quoted "host:port": reverse_proxy to them
    redirect: str = ""  # a `redir` target (an HTTPS route reached over HTTP)
    unrouted: bool = False  # no route has this path: 404

    # neither upstreams, redirect nor unrouted: the service has no running instance → 503


@dataclass(frozen=True)
class Site:
    address: str
    handlers: tuple[Handler, ...]


def quote(value: str) -> str:
    """A Caddyfile token in double quotes (values are validated: no quote nor backslash)."""
    if any(c in value for c in '"\\{}') or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ProxyError("caddy", f"refusing to write {value!r} into the Caddyfile")
    return f'"{value}"'


def plain_http(domain: str) -> bool:
    """`.localhost` names are served over HTTP whatever their routes say (SPEC §13)."""
    return domain == "localhost" or domain.endswith(".localhost")


def sites(routes: Sequence[Route], upstreams: Upstreams, config: ProxyConfig) -> list[Site]:
    """Per domain: an HTTPS site with every route when one of them is `tls: auto`, and an HTTP
    site where `tls: off` routes are served and `auto` ones redirect to HTTPS. Within a site,
    longest prefix first; `/` (or a 404 when no route has it) is the catch-all."""
    by_domain: dict[str, list[Route]] = {}
    for route in routes:
        by_domain.setdefault(route.domain, []).append(route)
    result = []
    for domain in sorted(by_domain):
        group = sorted(by_domain[domain], key=lambda r: (-len(r.path_prefix), r.path_prefix))
        secure = not plain_http(domain) and any(r.tls == "auto" for r in group)
        if secure:
            address = quote(f"https://{domain}:{config.https_port}")
            result.append(Site(address, _handlers(group, upstreams, redirect="")))
        if not secure or any(r.tls == "off" for r in group):
            # As Caddy's own redirect: no port (https_port is taken as forwarded from 443).
            redirect = '"https://{host}{uri}"' if secure else ""
            address = quote(f"http://{domain}:{config.http_port}")
            result.append(Site(address, _handlers(group, upstreams, redirect=redirect)))
    return result


def _handlers(group: Sequence[Route], upstreams: Upstreams, redirect: str) -> tuple[Handler, ...]:
    handlers = []
    for number, route in enumerate(group):
        prefix = route.path_prefix
        # `/api` is `/api` and what is under it, never `/apix`.
        paths = () if prefix == "/" else (quote(prefix), quote(prefix + "/*"))
        name = f"r{number}"
        if redirect and route.tls == "auto":
            handlers.append(Handler(name, paths, redirect=redirect))
            continue
        addresses = tuple(upstreams.get(route.upstream_key, ()))
        for address in addresses:
            if not _UPSTREAM.match(address):
                raise ProxyError("caddy", f"invalid upstream address {address!r} (host:port)")
        handlers.append(Handler(name, paths, upstreams=tuple(quote(a) for a in addresses)))
    if all(route.path_prefix != "/" for route in group):
        handlers.append(Handler("none", (), unrouted=True))
    return tuple(handlers)


def admin_address(config: ProxyConfig) -> str:
    """`proxy.caddy_admin` as Caddy's `admin` option wants it: host:port, or unix//path."""
    if config.caddy_admin.startswith(UNIX):
        return config.caddy_admin
    parts = urlsplit(config.caddy_admin)
    if parts.hostname is None:
        raise ProxyError("caddy", f"proxy.caddy_admin is not an http://host:port URL: {parts!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 80}"


def render_caddyfile(
    routes: Sequence[Route], upstreams: Upstreams, config: ProxyConfig, admin: str | None = None
) -> str:
    """The whole Caddyfile; blocking (template files): call it from a worker thread. `admin`:
    where Caddy listens for it when that is not where we dial (a socket in a mounted dir)."""
    return render(
        TEMPLATE,
        admin=admin or admin_address(config),
        http_port=config.http_port,
        https_port=config.https_port,
        internal=config.tls_issuer == "internal",
        sites=sites(routes, upstreams, config),
        try_duration=TRY_DURATION,
        try_interval=TRY_INTERVAL,
        upstream_idle=UPSTREAM_IDLE,
    )


class CaddyProxy:
    """Every apply renders the whole table and POSTs it to `<caddy_admin>/load`: Caddy adapts
    and provisions it, then swaps atomically (a refused config leaves the old one serving)."""

    name = "caddy"

    def __init__(
        self, config: Config, *, proxy: ProxyConfig | None = None, admin_listen: str | None = None
    ) -> None:
        """`proxy` replaces `config.proxy` (the swarm proxy's: its admin socket, its own
        Caddyfile, the ports inside its container); `admin_listen` is the Caddyfile's `admin`
        when Caddy sees the socket at another path than we do."""
        self.config = proxy or config.proxy
        self._admin_listen = admin_listen
        self._host_checked = False

    async def apply(self, routes: Sequence[Route], upstreams: Upstreams) -> None:
        if not self._host_checked:
            self._host_checked = True
            if await asyncio.to_thread(_migrate_req) == "0":
                _LOGGER.warning(
                    "net.ipv4.tcp_migrate_req is 0: a connection opened at the instant Caddy "
                    "loads a new config can be refused; `sysctl -w net.ipv4.tcp_migrate_req=1` "
                    "(and a file in /etc/sysctl.d/) prevents it"
                )
        text = await asyncio.to_thread(
            render_caddyfile, routes, upstreams, self.config, self._admin_listen
        )
        # Written beside the target first, so a file we could not write stops us before Caddy
        # takes a config that a restart would lose; renamed over it once Caddy accepted.
        target = Path(self.config.caddyfile)
        try:
            staged = await asyncio.to_thread(_stage, target, text)
        except OSError as err:
            raise ProxyError("caddy", f"cannot write {target}: {err}") from None
        try:
            await self._load(text)
        except BaseException:
            await asyncio.to_thread(staged.unlink, missing_ok=True)
            raise
        await asyncio.to_thread(os.replace, staged, self.config.caddyfile)

    async def _load(self, text: str) -> None:
        session, base, headers = admin_session(self.config.caddy_admin, LOAD_TIMEOUT)
        headers = {**headers, "Content-Type": "text/caddyfile"}
        try:
            async with (
                session,
                session.post(base + "/load", data=text.encode(), headers=headers) as answer,
            ):
                body = await answer.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            said = f"caddy admin API at {self.config.caddy_admin} does not answer ({err})"
            raise ProxyError(
                "caddy",
                said,
                message=f"{said}: start Caddy (caddy run --config {self.config.caddyfile} "
                "--adapter caddyfile) or set proxy.caddy_admin to its admin address",
            ) from None
        if answer.status != 200:
            raise ProxyError("caddy", _caddy_error(body))
        if body.strip():  # the adapter's warnings: the config was loaded
            _LOGGER.warning("caddy took the config with warnings: %s", body.strip()[:1000])

    async def problem(self) -> str | None:
        return await caddy_problem(self.config)

    def https(self) -> str:
        return "internal" if self.config.tls_issuer == "internal" else "automatic"


def _caddy_error(body: str) -> str:
    """Caddy answers {"error": "..."}; its words, or the body as it came."""
    with contextlib.suppress(ValueError, AttributeError):
        error = json.loads(body).get("error")
        if isinstance(error, str) and error:
            return error
    return body or "no message"


def _migrate_req() -> str | None:
    try:
        return MIGRATE_REQ.read_text().strip()
    except OSError:  # not Linux, or a kernel without it
        return None


def _stage(target: Path, text: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(text)
    staged = Path(name)
    staged.chmod(0o644)  # mkstemp's 0600 would hide it from a Caddy running as its own user
    return staged
