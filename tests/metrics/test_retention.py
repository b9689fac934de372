"""Host metrics storage: batched writes, rollups and retention over a simulated 100 days."""

from dataclasses import replace

from dployr.metrics.recorder import HostRecorder
from dployr.store import metrics as store
from dployr.store.db import Database
from dployr.store.metrics import HOUR, MINUTE, RAW, HostSample

DAY = 86400
T0 = 1_800_000_000 - 1_800_000_000 % DAY  # a midnight, so buckets line up with the arithmetic
ZERO = HostSample(0, *([0.0] * 13))


def simulated(ts: int) -> HostSample:
    """Two samples a minute: cpu is hour%24 and hour%24 + 2 (minute and hour mean: +1);
    memory_used is the minute of the hour (the hour's mean: 29.5)."""
    hour = (ts // HOUR) % 24
    return replace(
        ZERO,
        ts=ts,
        cpu_percent=float(hour + (2 if ts % 60 else 0)),
        memory_used=float((ts % HOUR) // 60),
    )


async def test_hundred_days_stay_bounded_and_averages_are_right(tmp_path):
    db = await Database.open(tmp_path / "m.db")
    clock = [float(T0)]
    recorder = HostRecorder(db, tmp_path, 30, "agt_test", clock=lambda: clock[0])
    bounds = {RAW: DAY // 30 + 6 * 120, MINUTE: 7 * 1440 + 1, HOUR: 90 * 24 + 1}
    try:
        for batch in range(100 * 4):  # every 6 simulated hours: their samples, then a roll-up
            start = T0 + batch * 6 * HOUR
            await store.insert_samples(
                db, [simulated(ts) for ts in range(start, start + 6 * HOUR, 30)]
            )
            clock[0] = start + 6 * HOUR
            await recorder.roll_up()
            counts = await store.count_rows(db)
            assert all(counts.get(res, 0) <= bound for res, bound in bounds.items()), counts
        now = recorder.now()
        assert now == T0 + 100 * DAY
        counts = await store.count_rows(db)
        assert counts[RAW] == DAY // 30  # the last 24 h, raw
        assert counts[MINUTE] == 7 * 1440  # 7 days of minutes
        assert counts[HOUR] == 90 * 24  # 90 days of hours

        # An hour 80 days back, only kept as an hour: cpu mean hour%24 + 1, memory mean 29.5.
        hour_start = now - 80 * DAY + 5 * HOUR
        [hour] = await store.series(db, HOUR, hour_start, hour_start, HOUR)
        assert hour.ts == hour_start
        assert hour.cpu_percent == 6.0 and hour.memory_used == 29.5
        # A minute 3 days back: its two samples averaged.
        minute_start = now - 3 * DAY + 7 * HOUR + 13 * 60
        [minute] = await store.series(db, MINUTE, minute_start, minute_start, MINUTE)
        assert minute.cpu_percent == 8.0 and minute.memory_used == 13.0
        # Older than 90 days: gone at every resolution.
        assert await store.series(db, HOUR, T0, now - 90 * DAY - 1, HOUR) == []
    finally:
        await db.close()


async def test_samples_are_written_in_batches_and_flushed_on_demand(tmp_path):
    db = await Database.open(tmp_path / "m.db")
    clock = [float(T0)]
    recorder = HostRecorder(db, tmp_path, 10, "agt_test", clock=lambda: clock[0])
    try:
        for _ in range(6):  # 50 s of samples: real psutil readings, stamped by the clock
            await recorder.record()
            clock[0] += 10
        assert await store.count_rows(db) == {}  # still one batch in memory
        current = await recorder.current()
        assert current is not None and current.ts == T0 + 50
        assert current.memory_used > 0 and current.uptime > 0 and 0 <= current.disk_percent <= 100
        await recorder.record()  # 60 s after the first: the batch is written
        assert await store.count_rows(db) == {RAW: 7}
        clock[0] += 10
        await recorder.record()
        await recorder.flush()
        assert await store.count_rows(db) == {RAW: 8}
        assert (await store.latest(db)) == recorder.newest
    finally:
        await db.close()
