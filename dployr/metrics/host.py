"""Reading the host with psutil (in a worker thread: psutil calls block)."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from dployr.store.metrics import HostSample


@dataclass(frozen=True)
class HostFacts:
    """What does not change between samples: the instance object's fixed fields."""

    hostname: str
    os: str
    kernel: str
    cpu_count: int
    memory_total: int
    disk_total: int
    boot_time: float


def disk_path(data_path: Path) -> str:
    """The mount to watch: the data dir's (where dployr writes), the root while it is missing."""
    return str(data_path) if data_path.exists() else "/"


def read_facts(data_path: Path) -> HostFacts:
    return HostFacts(
        hostname=socket.gethostname(),
        os=_os_name(),
        kernel=platform.release(),
        cpu_count=psutil.cpu_count() or 1,
        memory_total=psutil.virtual_memory().total,
        disk_total=psutil.disk_usage(disk_path(data_path)).total,
        boot_time=psutil.boot_time(),
    )


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    except OSError:
        return platform.system()


def _network_bytes() -> tuple[int, int]:
    """Bytes received and sent on every interface but loopback (traffic between local
    processes, the proxy and its apps, is not the host's network)."""
    counters = psutil.net_io_counters(pernic=True)
    rx = sum(c.bytes_recv for name, c in counters.items() if name != "lo")
    tx = sum(c.bytes_sent for name, c in counters.items() if name != "lo")
    return rx, tx


class HostSampler:
    """Each call returns one HostSample; network rates are counter deltas over the time
    between two calls (the first call has no previous reading: 0 bytes/s)."""

    def __init__(self, data_path: Path) -> None:
        self._data_path = data_path
        self._last_net: tuple[float, int, int] | None = None
        psutil.cpu_percent(None)  # primes the CPU counters: the first real call has a baseline

    async def sample(self, ts: int) -> HostSample:
        return await asyncio.to_thread(self._read, ts)

    def _read(self, ts: int) -> HostSample:
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        disk = psutil.disk_usage(disk_path(self._data_path))
        load_1, load_5, load_15 = os.getloadavg()
        rx_total, tx_total = _network_bytes()
        now = time.monotonic()
        rx_bps = tx_bps = 0.0
        if self._last_net is not None:
            then, rx, tx = self._last_net
            elapsed = now - then
            if elapsed > 0:  # counters can wrap or reset (an interface going away): never < 0
                rx_bps = max(0.0, (rx_total - rx) / elapsed)
                tx_bps = max(0.0, (tx_total - tx) / elapsed)
        self._last_net = (now, rx_total, tx_total)
        return HostSample(
            ts=ts,
            cpu_percent=psutil.cpu_percent(None),
            load_1=load_1,
            load_5=load_5,
            load_15=load_15,
            memory_used=float(memory.total - memory.available),
            memory_percent=memory.percent,
            swap_used=float(swap.used),
            swap_percent=swap.percent,
            disk_used=float(disk.used),
            disk_percent=disk.percent,
            net_rx_bps=round(rx_bps, 1),
            net_tx_bps=round(tx_bps, 1),
            uptime=round(time.time() - psutil.boot_time(), 1),
        )
