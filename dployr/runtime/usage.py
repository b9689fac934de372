"""Usage of process trees (the host targets' instances, and containers where the engine has no
cgroup figures): CPU seconds and resident bytes through psutil, CPU % between two samples."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

import psutil

from dployr.runtime.protocol import Usage


def tree_usage(pids: Sequence[int]) -> dict[int, tuple[float, int]]:
    """CPU seconds (user + system) and resident bytes of each pid's process tree; a pid that is
    gone is left out. Blocking: run it in a thread."""
    found = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        cpu, rss = 0.0, 0
        for process in tree:
            try:
                times, memory = process.cpu_times(), process.memory_info()
            except psutil.Error:
                continue  # exited meanwhile
            cpu += times.user + times.system
            rss += memory.rss
        found[pid] = (cpu, rss)
    return found


class TreeSampler:
    """CPU % of each instance's process tree since its previous sample. Keyed by instance and
    pid: a restarted run (a new pid) starts again from 0; an instance not sampled this round
    is forgotten."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], tuple[float, float]] = {}  # → (CPU s, monotonic)

    async def sample(self, wanted: Mapping[str, tuple[int, int]]) -> dict[str, Usage]:
        """`wanted`: ref → (the tree's root pid, restarts). psutil blocks: one worker thread."""
        trees = await asyncio.to_thread(tree_usage, [pid for pid, _ in wanted.values()])
        now, found, readings = time.monotonic(), {}, {}
        for ref, (pid, restarts) in wanted.items():
            if pid not in trees:
                continue
            cpu, rss = trees[pid]
            before = self._last.get((ref, pid))
            percent = 0.0
            if before is not None and now > before[1] and cpu >= before[0]:
                percent = round((cpu - before[0]) / (now - before[1]) * 100, 2)
            readings[(ref, pid)] = (cpu, now)
            found[ref] = Usage(percent, rss, restarts)
        self._last = readings
        return found
