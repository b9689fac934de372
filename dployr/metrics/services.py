"""The services metrics job: each running service's live instance, read through its target,
buffered and written in batches like the host's samples; the clock is injectable."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from dployr.errors import DployrError
from dployr.pipeline import control
from dployr.pipeline.deployer import Deployer
from dployr.runtime.protocol import Target, Usage
from dployr.store import service_metrics as store
from dployr.store import services
from dployr.store.db import Database
from dployr.store.service_metrics import ServiceSample
from dployr.store.services import Service

_LOGGER = logging.getLogger(__name__)
FLUSH_SECONDS = 60  # as the host's: one transaction a minute


@dataclass(frozen=True)
class Counters:
    """An instance's cumulative network bytes at a moment (seconds, the recorder's clock)."""

    at: float
    restarts: int
    rx: int
    tx: int


def counters(at: float, usage: Usage) -> Counters | None:
    if usage.net_rx_bytes is None or usage.net_tx_bytes is None:
        return None  # systemd and process targets: no per-process network counter
    return Counters(at, usage.restarts, usage.net_rx_bytes, usage.net_tx_bytes)


def net_rates(before: Counters | None, now: Counters | None) -> tuple[float | None, float | None]:
    """Bytes a second received and sent between two readings of one instance: None for a
    first reading, and where the counters started again (a restart) — never negative."""
    if before is None or now is None or now.restarts != before.restarts:
        return None, None
    elapsed = now.at - before.at
    rx, tx = now.rx - before.rx, now.tx - before.tx
    if elapsed <= 0 or rx < 0 or tx < 0:
        return None, None
    return round(rx / elapsed, 1), round(tx / elapsed, 1)


@dataclass(frozen=True)
class Current:
    service_id: str
    service_name: str
    sample: ServiceSample


class ServiceRecorder:
    def __init__(self, db: Database, interval: int, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self.interval = interval
        self._clock = clock
        self._pending: list[tuple[str, ServiceSample]] = []
        self._lock = asyncio.Lock()
        self.newest: dict[str, Current] = {}  # by service id: the last round's samples
        # By instance ref (a new container starts afresh): the last round's network counters.
        self._counters: dict[str, Counters] = {}

    def now(self) -> int:
        return int(self._clock())

    async def record(self, deployer: Deployer) -> None:
        """The job run every `metrics.interval` seconds: one usage() call per target."""
        at = self._clock()
        ts = int(at)
        running = [
            s
            for s in await services.all_services(deployer.db)
            if s.desired_state == "running" and s.current_deployment_id
        ]
        lives = await asyncio.gather(*(control.live_deployment(deployer, s) for s in running))
        by_target: dict[str, tuple[Target, dict[str, Service]]] = {}
        for service, live in zip(running, lives, strict=True):
            if live is not None and live.instance_ref:
                target = deployer.target_of(live)
                by_target.setdefault(target.name, (target, {}))[1][live.instance_ref] = service
        answers = await asyncio.gather(
            *(target.usage(list(refs)) for target, refs in by_target.values()),
            return_exceptions=True,
        )
        newest: dict[str, Current] = {}
        seen: dict[str, Counters] = {}
        for (target, refs), answer in zip(by_target.values(), answers, strict=True):
            if isinstance(answer, DployrError):
                _LOGGER.debug("no usage from the %s target: %s", target.name, answer)
                continue
            if isinstance(answer, BaseException):
                raise answer
            for ref, usage in answer.items():
                service = refs[ref]
                reading = counters(at, usage)
                rx, tx = net_rates(self._counters.get(ref), reading)
                if reading is not None:
                    seen[ref] = reading
                sample = ServiceSample(
                    ts, usage.cpu_percent, float(usage.memory_bytes), usage.restarts, rx, tx
                )
                newest[service.id] = Current(service.id, service.name, sample)
                self._pending.append((service.id, sample))
        self.newest = newest
        self._counters = seen  # refs gone (or not answered this round) start afresh
        if self._pending and ts - self._pending[0][1].ts >= FLUSH_SECONDS:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            try:
                await store.insert_samples(self._db, batch)
            except BaseException:
                self._pending[:0] = batch
                raise

    async def roll_up(self) -> None:
        await self.flush()
        await store.roll_up(self._db, self.now())

    async def current(self, service_id: str) -> ServiceSample | None:
        newest = self.newest.get(service_id)
        return newest.sample if newest is not None else await store.latest(self._db, service_id)
