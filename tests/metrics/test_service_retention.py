"""Per-service samples: batched, rolled up per service and kept bounded over 100 days."""

from __future__ import annotations

from pathlib import Path

from dployr.store import service_metrics as store
from dployr.store.db import Database
from dployr.store.metrics import HOUR, MINUTE, RAW
from dployr.store.service_metrics import ServiceSample

DAY = 86400
T0 = 1_800_000_000 - 1_800_000_000 % DAY


def sample(ts: int, service: int) -> ServiceSample:
    """cpu alternates 10/30 (mean 20) + the service's number; restarts = the hour of the day."""
    return ServiceSample(ts, 10.0 + 20 * ((ts // 30) % 2) + service, 1000.0 * service,
                         (ts // HOUR) % 24)  # fmt: skip


async def test_hundred_days_of_two_services(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "m.db")
    try:
        for batch in range(100 * 4):
            start = T0 + batch * 6 * HOUR
            rows = [(f"svc_{n}", sample(ts, n)) for ts in range(start, start + 6 * HOUR, 30)
                    for n in (1, 2)]  # fmt: skip
            await store.insert_samples(db, rows)
            await store.roll_up(db, start + 6 * HOUR)
        counts = await store.count_rows(db)
        assert counts == {RAW: 2 * DAY // 30, MINUTE: 2 * 7 * 1440, HOUR: 2 * 90 * 24}
        now = T0 + 100 * DAY
        hour_start = now - 80 * DAY + 5 * HOUR
        (point,) = await store.series(db, "svc_2", HOUR, hour_start, hour_start, HOUR)
        assert point == ServiceSample(hour_start, 22.0, 2000.0, 5)  # restarts: the max
        minute = now - 3 * DAY + 7 * MINUTE
        (point,) = await store.series(db, "svc_1", MINUTE, minute, minute, MINUTE)
        assert point.cpu_percent == 21.0 and point.memory_bytes == 1000.0
        assert (await store.latest(db, "svc_1")) == sample(now - 30, 1)
    finally:
        await db.close()


async def test_network_rates_are_averaged_leaving_unknown_ones_out(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "m.db")
    try:
        rows = [
            ("svc_1", ServiceSample(T0, 1.0, 10.0, 0, None, None)),  # a first sample
            ("svc_1", ServiceSample(T0 + 10, 1.0, 10.0, 0, 100.0, 4.0)),
            ("svc_1", ServiceSample(T0 + 20, 1.0, 10.0, 0, 300.0, 8.0)),
            ("svc_2", ServiceSample(T0, 1.0, 10.0, 0)),  # a process service: never known
        ]
        await store.insert_samples(db, rows)
        await store.roll_up(db, T0 + MINUTE)
        (point,) = await store.series(db, "svc_1", MINUTE, T0, T0, MINUTE)
        assert (point.net_rx_bps, point.net_tx_bps) == (200.0, 6.0)
        (point,) = await store.series(db, "svc_2", MINUTE, T0, T0, MINUTE)
        assert (point.net_rx_bps, point.net_tx_bps) == (None, None)
        raw = await store.series(db, "svc_1", RAW, T0, T0 + 20, 10)
        assert [p.net_rx_bps for p in raw] == [None, 100.0, 300.0]
        assert (await store.latest(db, "svc_1")) == rows[2][1]
    finally:
        await db.close()
