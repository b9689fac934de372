"""Which reverse proxy serves the routes: the configured one, or for `auto` the first found."""

from __future__ import annotations

import asyncio
import shutil

import aiohttp

from dployr.config import ProxyConfig

PROBE_TIMEOUT = 2.0
UNIX = "unix/"  # Caddy's spelling of a socket file: unix//run/admin.sock is /run/admin.sock


def admin_session(admin: str, timeout: float) -> tuple[aiohttp.ClientSession, str, dict[str, str]]:
    """A session to Caddy's admin API at `admin` (http://host:port or unix//path), the base
    URL of its endpoints and the headers every request needs: on a socket file Caddy accepts
    only an empty Host (its origin check has no host name to compare)."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    if admin.startswith(UNIX):
        connector = aiohttp.UnixConnector(path=admin[len(UNIX) :])
        session = aiohttp.ClientSession(connector=connector, timeout=client_timeout)
        return session, "http://localhost", {"Host": ""}
    return aiohttp.ClientSession(timeout=client_timeout), admin.rstrip("/"), {}


async def caddy_problem(config: ProxyConfig) -> str | None:
    """None when Caddy's admin API answers, else why not."""
    session, base, headers = admin_session(config.caddy_admin, PROBE_TIMEOUT)
    try:
        async with session, session.get(base + "/config/", headers=headers) as answer:
            if answer.status == 200:
                return None
            return f"caddy admin API at {config.caddy_admin} answered {answer.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        return f"caddy admin API at {config.caddy_admin} does not answer ({type(err).__name__})"


async def nginx_problem(config: ProxyConfig | None = None) -> str | None:
    """None when nginx is installed and, given a config, its master runs for nginx_conf."""
    if config is not None:
        from dployr.proxy.nginx import master_problem

        return await asyncio.to_thread(master_problem, config)
    found = await asyncio.to_thread(shutil.which, "nginx")
    return None if found else "nginx is not installed (no nginx on PATH)"


async def resolve_backend(config: ProxyConfig) -> str:
    """`auto`: Caddy if its admin API answers, else nginx if installed, else none."""
    if config.backend != "auto":
        return config.backend
    if await caddy_problem(config) is None:
        return "caddy"
    if await nginx_problem() is None:
        return "nginx"
    return "none"


async def proxy_problem(config: ProxyConfig) -> str | None:
    """None when the configured backend can be driven, else why not (for /health/ready)."""
    if config.backend == "caddy":
        return await caddy_problem(config)
    if config.backend == "nginx":
        return await nginx_problem(config)
    return None
