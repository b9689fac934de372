"""The host metrics job: sample, buffer, write in batches, roll up; the clock is injectable."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from dployr.ids import now_iso
from dployr.metrics.alerts import HostAlerts
from dployr.metrics.host import HostFacts, HostSampler, read_facts
from dployr.store import events
from dployr.store import metrics as store
from dployr.store.db import Database
from dployr.store.metrics import HostSample

_LOGGER = logging.getLogger(__name__)
# Samples are kept in memory and written together, one transaction (one fsync) per batch.
FLUSH_SECONDS = 60

Clock = Callable[[], float]


class HostRecorder:
    def __init__(
        self,
        db: Database,
        data_path: Path,
        interval: int,
        instance_id: str,
        clock: Clock = time.time,
        alerts: HostAlerts | None = None,
    ) -> None:
        self._db = db
        self.instance_id = instance_id
        self._data_path = data_path
        self.interval = interval
        self._clock = clock
        self._alerts = alerts
        self._sampler: HostSampler | None = None
        self._pending: list[HostSample] = []
        self._lock = asyncio.Lock()  # one flush at a time: the job, a reader and the stop
        self.newest: HostSample | None = None
        self.facts: HostFacts | None = None

    def now(self) -> int:
        return int(self._clock())

    async def start(self) -> None:
        self._sampler = await asyncio.to_thread(HostSampler, self._data_path)
        self.facts = await asyncio.to_thread(read_facts, self._data_path)

    async def record(self) -> None:
        """The job run every `metrics.interval` seconds."""
        if self._sampler is None:
            await self.start()
        assert self._sampler is not None
        sample = await self._sampler.sample(self.now())
        self.newest = sample
        self._pending.append(sample)
        if sample.ts - self._pending[0].ts >= FLUSH_SECONDS:
            await self.flush()
        alerts = self._alerts.check(sample) if self._alerts is not None else []
        for alert in alerts:
            _LOGGER.warning(
                "host %s %s: %.1f (threshold %s)",
                alert.metric,
                alert.state,
                alert.value,
                alert.threshold,
            )
            # Owned by no one: admins' sockets and webhooks get it (the persisted log).
            await events.append_event(
                self._db, "instance.alert", None, alert.data(self.instance_id, now_iso())
            )

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            try:
                await store.insert_samples(self._db, batch)
            except BaseException:
                self._pending[:0] = batch  # kept for the next try
                raise

    async def roll_up(self) -> None:
        """The rollup job: what is pending first, so complete minutes are whole."""
        await self.flush()
        await store.roll_up(self._db, self.now())

    async def current(self) -> HostSample | None:
        return self.newest or await store.latest(self._db)
