"""Containers' usage from the engine's one-shot stats, all asked at once over its HTTP API; CPU %
from the difference with our own previous reading. Where the engine has no cgroup figures (a
nested engine: "cannot find cgroup mount destination"), the container's process tree."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dployr.runtime.protocol import RuntimeFailure, Usage
from dployr.runtime.usage import TreeSampler

GetJson = Callable[[str, dict[str, str] | None], Awaitable[Any]]


@dataclass(frozen=True)
class _Reading:
    container_ns: int  # CPU time the container used, all cores
    system_ns: int  # CPU time the host's cores ran (cgroup and system clocks the engine reads)


def cpu_reading(stats: dict[str, Any]) -> _Reading | None:
    cpu = stats.get("cpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage")
    system = cpu.get("system_cpu_usage")
    if total is None or system is None:
        return None
    return _Reading(int(total), int(system))


def cpu_percent(before: _Reading | None, now: _Reading, online_cpus: int) -> float:
    """Percent of one core over the time between the two readings (like `docker stats`)."""
    if before is None:
        return 0.0
    used, ran = now.container_ns - before.container_ns, now.system_ns - before.system_ns
    if used < 0 or ran <= 0:  # a restarted container's counters start again
        return 0.0
    return round(used / ran * online_cpus * 100, 2)


def memory_bytes(stats: dict[str, Any]) -> int:
    """Usage minus the inactive page cache (cgroup v2 `inactive_file`, v1
    `total_inactive_file`), as `docker stats` shows it."""
    memory = stats.get("memory_stats") or {}
    details = memory.get("stats") or {}
    cache = details.get("inactive_file", details.get("total_inactive_file", 0))
    return max(0, int(memory.get("usage", 0)) - int(cache))


def network_bytes(stats: dict[str, Any]) -> tuple[int, int] | None:
    """Bytes received and sent by all the container's interfaces since it started; None
    without figures (host networking, no network)."""
    networks = stats.get("networks")
    if not isinstance(networks, dict) or not networks:
        return None
    rx = sum(int(n.get("rx_bytes") or 0) for n in networks.values())
    tx = sum(int(n.get("tx_bytes") or 0) for n in networks.values())
    return rx, tx


class DockerStats:
    """One one-shot stats call and one inspect per container and round, all concurrent on the
    engine's HTTP API (no thread, no connection held between rounds). `local`: the engine runs
    on this host, so a container's pid is ours to read when the engine has no figures."""

    def __init__(self, get_json: GetJson, local: bool) -> None:
        self._get_json = get_json
        self._local = local
        self._last: dict[str, _Reading] = {}
        self._trees = TreeSampler()

    async def usage(self, refs: Sequence[str]) -> dict[str, Usage]:
        answers = await asyncio.gather(*(self._read(ref) for ref in refs), return_exceptions=True)
        found: dict[str, Usage] = {}
        no_figures: dict[str, tuple[int, int]] = {}  # ref → (pid, restarts)
        failures: list[RuntimeFailure] = []
        for ref, answer in zip(refs, answers, strict=True):
            if isinstance(answer, RuntimeFailure):
                failures.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            elif isinstance(answer, Usage):
                found[ref] = answer
            elif answer is not None:
                no_figures[ref] = answer
        if refs and len(failures) == len(refs):
            raise failures[0]  # the engine is down: not "every container is gone"
        found.update(await self._trees.sample(no_figures))
        # Readings of containers no longer asked about are dropped (bounded, and a ref that
        # comes back starts afresh).
        self._last = {ref: self._last[ref] for ref in found if ref in self._last}
        return found

    async def _read(self, ref: str) -> Usage | tuple[int, int] | None:
        """The usage from the engine's figures, (pid, restarts) when it has none, or None
        when the container is gone or not running."""
        attrs, stats = await asyncio.gather(
            self._get_json(f"/containers/{ref}/json", None),
            self._get_json(f"/containers/{ref}/stats", {"stream": "false", "one-shot": "true"}),
        )
        if attrs is None or stats is None or not attrs["State"].get("Running"):
            return None
        restarts = int(attrs.get("RestartCount", 0))
        reading = cpu_reading(stats)
        if reading is None:
            pid = int(attrs["State"].get("Pid") or 0)
            return (pid, restarts) if self._local and pid > 0 else None
        online = int((stats.get("cpu_stats") or {}).get("online_cpus") or 1)
        percent = cpu_percent(self._last.get(ref), reading, online)
        self._last[ref] = reading
        rx, tx = network_bytes(stats) or (None, None)
        return Usage(percent, memory_bytes(stats), restarts, rx, tx)
