"""Per-service metric samples: batched inserts, 1-minute and 1-hour rollups, series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dployr.store.db import Database, Row
from dployr.store.metrics import HOUR, MINUTE, RAW, RETENTION

_SELECT = "ts, cpu_percent, memory_bytes, restarts, net_rx_bps, net_tx_bps"
# restarts is a count that only grows within an instance: a bucket keeps its largest. avg()
# leaves out NULL rates (a bucket of unknown rates stays NULL).
_AGGREGATES = "avg(cpu_percent), avg(memory_bytes), max(restarts), avg(net_rx_bps), avg(net_tx_bps)"


@dataclass(frozen=True)
class ServiceSample:
    ts: int
    cpu_percent: float  # of one core
    memory_bytes: float
    restarts: int
    net_rx_bps: float | None = None  # bytes a second; None: not known
    net_tx_bps: float | None = None


def _rate(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _sample(row: Row) -> ServiceSample:
    return ServiceSample(
        int(row[0]),
        round(float(row[1]), 2),
        float(row[2]),
        int(row[3]),
        _rate(row[4]),
        _rate(row[5]),
    )


async def insert_samples(db: Database, samples: Sequence[tuple[str, ServiceSample]]) -> None:
    """Raw samples of many services, in one transaction."""
    if not samples:
        return
    async with db.transaction() as tx:
        await tx.executemany(
            f"INSERT OR REPLACE INTO service_metrics (service_id, resolution, {_SELECT})"
            f" VALUES (?, {RAW}, ?, ?, ?, ?, ?, ?)",
            [
                (
                    service_id,
                    s.ts,
                    s.cpu_percent,
                    s.memory_bytes,
                    s.restarts,
                    s.net_rx_bps,
                    s.net_tx_bps,
                )
                for service_id, s in samples
            ],
        )


async def roll_up(db: Database, now: int) -> None:
    """Complete minutes of raw samples and complete hours of minutes, newer than the last
    bucket rolled (all services are sampled in the same rounds), then the retention."""
    async with db.transaction() as tx:
        for source, target in ((RAW, MINUTE), (MINUTE, HOUR)):
            rows = await tx.execute_fetchall(
                "SELECT coalesce(max(ts) + ?, 0) FROM service_metrics WHERE resolution = ?",
                (target, target),
            )
            since = next(iter(rows))[0]
            until = now - now % target
            await tx.execute(
                f"INSERT OR REPLACE INTO service_metrics (service_id, resolution, {_SELECT})"
                f" SELECT service_id, ?, ts - ts % ?, {_AGGREGATES} FROM service_metrics"
                " WHERE resolution = ? AND ts >= ? AND ts < ?"
                " GROUP BY service_id, ts - ts % ?",
                (target, target, source, since, until, target),
            )
        for resolution, keep in RETENTION.items():
            await tx.execute(
                "DELETE FROM service_metrics WHERE resolution = ? AND ts < ?",
                (resolution, now - keep),
            )


async def latest(db: Database, service_id: str) -> ServiceSample | None:
    row = await db.fetchone(
        f"SELECT {_SELECT} FROM service_metrics WHERE service_id = ? AND resolution = {RAW}"
        " ORDER BY ts DESC LIMIT 1",
        (service_id,),
    )
    return None if row is None else _sample(row)


async def series(
    db: Database, service_id: str, resolution: int, start: int, end: int, step: int
) -> list[ServiceSample]:
    """Buckets of `step` seconds from `start`, oldest first, stamped with their start."""
    rows = await db.fetchall(
        f"SELECT ? + ((ts - ?) / ?) * ? AS bucket, {_AGGREGATES} FROM service_metrics"
        " WHERE service_id = ? AND resolution = ? AND ts >= ? AND ts <= ?"
        " GROUP BY bucket ORDER BY bucket",
        (start, start, step, step, service_id, resolution, start, end),
    )
    return [_sample(row) for row in rows]


async def count_rows(db: Database) -> dict[int, int]:
    rows = await db.fetchall(
        "SELECT resolution, count(*) FROM service_metrics GROUP BY resolution ORDER BY resolution"
    )
    return {int(row[0]): int(row[1]) for row in rows}
