"""The nginx backend: dployr-*.conf files in proxy.nginx_dir, `nginx -t`, a reload, and a wait
until the new workers serve (SPEC §5); a refused config puts the previous files back."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from dployr.config import Config, ProxyConfig
from dployr.errors import ProxyError
from dployr.proxy.nginx_files import render_files, restore_ours, write_ours
from dployr.proxy.protocol import Route, Upstreams
from dployr.tasks import run_to_end

_LOGGER = logging.getLogger(__name__)
COMMAND_TIMEOUT = 30.0  # `nginx -t` loads every certificate; a busy machine is slow
SWITCH_TIMEOUT = 15.0  # from `-s reload` to the old workers no longer accepting
POLL = 0.02
DEFAULT_PID = "/run/nginx.pid"  # Debian's and Ubuntu's compiled-in default
_PID = re.compile(r"^\s*pid\s+([^;#\s]+)\s*;", re.MULTILINE)


class NginxProxy:
    name = "nginx"

    def __init__(self, config: Config) -> None:
        self.config = config.proxy
        self._lock = asyncio.Lock()  # the Router serializes too; this holds for any caller

    def https(self) -> str:
        return "certificates"

    async def problem(self) -> str | None:
        return await asyncio.to_thread(master_problem, self.config)

    async def apply(self, routes: Sequence[Route], upstreams: Upstreams) -> None:
        # Write, test, reload and restore are one step: a cancel waits for its end, so the
        # files on disk always match what the nginx master was last told to load.
        await run_to_end(self._apply(routes, upstreams))

    async def _apply(self, routes: Sequence[Route], upstreams: Upstreams) -> None:
        async with self._lock:
            files = await asyncio.to_thread(render_files, self.config, routes, upstreams)
            folder = Path(self.config.nginx_dir)
            before = await asyncio.to_thread(write_ours, folder, files)
            try:
                await self._run("-t", "-c", self.config.nginx_conf)
                master = await asyncio.to_thread(master_process, self.config)
                old = await asyncio.to_thread(_children, master)
                await self._run("-c", self.config.nginx_conf, "-s", "reload")
            except BaseException:
                await asyncio.to_thread(restore_ours, folder, before)
                raise
            try:
                await self._switched(master, old)
            except ProxyError:
                # The master kept its old config (a port it cannot bind, say): files back,
                # and a reload so that a master merely slow to take them reads the old ones.
                await asyncio.to_thread(restore_ours, folder, before)
                try:
                    await self._run("-c", self.config.nginx_conf, "-s", "reload")
                except ProxyError as err:
                    _LOGGER.warning("nginx reload after a restore failed: %s", err)
                raise

    async def _switched(self, master: int, old: set[int]) -> None:
        """Wait until the new configuration alone accepts connections: `-s reload` returns
        once the signal is sent; the master then starts new workers and, 100 ms later, tells
        the old ones to close their listening sockets (they finish requests in flight)."""
        started = time.monotonic()
        while not await asyncio.to_thread(_switch_done, master, old):
            if time.monotonic() - started > SWITCH_TIMEOUT:
                raise ProxyError(
                    "nginx",
                    f"the nginx master (pid {master}) did not start workers with the new config"
                    f" within {SWITCH_TIMEOUT:.0f} s; its error log says why",
                )
            await asyncio.sleep(POLL)
        _LOGGER.debug("nginx serves the new config after %.3f s", time.monotonic() - started)

    async def _run(self, *args: str) -> str:
        binary = await asyncio.to_thread(find_nginx)
        if binary is None:
            raise ProxyError("nginx", "nginx is not installed (no nginx on PATH)")
        process = await asyncio.create_subprocess_exec(
            binary, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                output, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ProxyError(
                "nginx", f"`nginx {' '.join(args)}` did not finish within {COMMAND_TIMEOUT:.0f} s"
            ) from None
        said = output.decode("utf-8", "replace")
        if process.returncode != 0:
            # Its first [emerg] line says what is wrong; the last one only that the test failed.
            first = next((line for line in said.splitlines() if "[emerg]" in line), "")
            message = (
                f"nginx refused the new config ({first[:300]}); the previous one keeps serving"
            )
            raise ProxyError("nginx", said, message if first else None)
        return said


def find_nginx() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


def pid_file(config: ProxyConfig) -> Path:
    """Where the master of nginx_conf writes its pid: the conf's `pid` directive, else the
    compiled-in default. Blocking (reads the conf)."""
    text = Path(config.nginx_conf).read_text(errors="replace")
    found = _PID.search(text)
    return Path(found.group(1).strip("\"'") if found else DEFAULT_PID)


def master_process(config: ProxyConfig) -> int:
    """The pid of the running nginx master of nginx_conf; else ProxyError. Blocking."""
    why = master_problem(config)
    if why is not None:
        raise ProxyError("nginx", why)
    return int(pid_file(config).read_text().strip())


def master_problem(config: ProxyConfig) -> str | None:
    """None when nginx is installed and a master runs for nginx_conf, else why. Blocking."""
    if find_nginx() is None:
        return "nginx is not installed (no nginx on PATH)"
    try:
        path = pid_file(config)
    except OSError as err:
        return f"cannot read nginx's config {config.nginx_conf}: {err.strerror}"
    try:
        pid = int(path.read_text().strip())
        alive = "nginx" in psutil.Process(pid).name()
    except (OSError, ValueError):
        return f"nginx is not running for {config.nginx_conf} (no pid in {path})"
    except psutil.Error:
        alive = False
    return (
        None
        if alive
        else f"nginx is not running for {config.nginx_conf} (pid file {path} is stale)"
    )


def _children(master: int) -> set[int]:
    try:
        return {child.pid for child in psutil.Process(master).children()}
    except psutil.NoSuchProcess:
        raise ProxyError("nginx", f"the nginx master (pid {master}) exited") from None


def _switch_done(master: int, old: set[int]) -> bool:
    """New workers run and no old worker still holds a listening socket."""
    children = _children(master)
    if not children - old:
        return False
    for pid in children & old:
        try:
            if any(
                c.status == psutil.CONN_LISTEN for c in psutil.Process(pid).net_connections("inet")
            ):
                return False
        except psutil.NoSuchProcess:
            continue
    return True
