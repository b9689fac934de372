"""Probes of this host: is a Docker engine answering, is systemd PID 1."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp

from dployr.config import RuntimeConfig

PROBE_TIMEOUT = 2.0


def docker_url(config: RuntimeConfig) -> str:
    return config.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _engine(url: str) -> tuple[aiohttp.BaseConnector, str] | None:
    """A connector and base URL for the engine at `url`; None when the scheme is not served."""
    if url.startswith("unix://"):
        return aiohttp.UnixConnector(path=url[len("unix://") :]), "http://docker"
    if url.startswith("tcp://"):
        return aiohttp.TCPConnector(), "http://" + url[len("tcp://") :]
    return None


async def docker_problem(config: RuntimeConfig) -> str | None:
    """None when the engine answers /_ping, else why not (for /health/ready)."""
    url = docker_url(config)
    engine = _engine(url)
    if engine is None:
        return f"unsupported docker_host {url!r} (use unix:// or tcp://)"
    connector, base = engine
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.get(base + "/_ping") as response,
        ):
            if response.status == 200:
                return None
            return f"docker engine at {url} answered {response.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        return f"no docker engine answers at {url} ({type(err).__name__})"


async def docker_version(config: RuntimeConfig) -> str | None:
    """The engine's version (its /version), None when no engine answers."""
    engine = _engine(docker_url(config))
    if engine is None:
        return None
    connector, base = engine
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.get(base + "/version") as response,
        ):
            if response.status != 200:
                return None
            version = (await response.json()).get("Version")
            return version if isinstance(version, str) else None
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return None


async def systemd_booted() -> bool:
    """systemd is PID 1 exactly when /run/systemd/system exists (sd_booted(3))."""
    return await asyncio.to_thread(Path("/run/systemd/system").is_dir)
