"""Host metric samples: batched inserts, rollups into 1-minute and 1-hour averages, series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from dployr.store.db import Database, Row

RAW, MINUTE, HOUR = 0, 60, 3600
# How long each resolution is kept, in seconds (SPEC §6).
RETENTION = {RAW: 24 * 3600, MINUTE: 7 * 24 * 3600, HOUR: 90 * 24 * 3600}


@dataclass(frozen=True)
class HostSample:
    """One reading of the host (or the average of several); ts in unix seconds."""

    ts: int
    cpu_percent: float
    load_1: float
    load_5: float
    load_15: float
    memory_used: float
    memory_percent: float
    swap_used: float
    swap_percent: float
    disk_used: float
    disk_percent: float
    net_rx_bps: float
    net_tx_bps: float
    uptime: float


COLUMNS = tuple(f.name for f in fields(HostSample))
VALUES = COLUMNS[1:]  # what is averaged
_SELECT = ", ".join(COLUMNS)
_AVERAGES = ", ".join(f"avg({name})" for name in VALUES)


def _sample(row: Row) -> HostSample:
    return HostSample(int(row[0]), *(float(v) for v in tuple(row)[1:]))


async def insert_samples(db: Database, samples: Sequence[HostSample]) -> None:
    """Raw samples, many in one transaction (one fsync for the batch)."""
    if not samples:
        return
    marks = ", ".join("?" for _ in COLUMNS)
    async with db.transaction() as tx:
        await tx.executemany(
            f"INSERT OR REPLACE INTO host_metrics (resolution, {_SELECT}) VALUES ({RAW}, {marks})",
            # Not dataclasses.astuple: it deep-copies every field, most of a batch's cost.
            [tuple(getattr(s, name) for name in COLUMNS) for s in samples],
        )


async def roll_up(db: Database, now: int) -> None:
    """Average complete minutes of raw samples and complete hours of minutes (only buckets
    newer than the last one rolled), then drop what is older than its resolution keeps."""
    async with db.transaction() as tx:
        for source, target in ((RAW, MINUTE), (MINUTE, HOUR)):
            rows = await tx.execute_fetchall(
                "SELECT coalesce(max(ts) + ?, 0) FROM host_metrics WHERE resolution = ?",
                (target, target),
            )
            since = next(iter(rows))[0]
            until = now - now % target  # the bucket in progress is not complete yet
            await tx.execute(
                f"INSERT OR REPLACE INTO host_metrics (resolution, {_SELECT})"
                f" SELECT ?, ts - ts % ?, {_AVERAGES} FROM host_metrics"
                " WHERE resolution = ? AND ts >= ? AND ts < ? GROUP BY ts - ts % ?",
                (target, target, source, since, until, target),
            )
        for resolution, keep in RETENTION.items():
            await tx.execute(
                "DELETE FROM host_metrics WHERE resolution = ? AND ts < ?",
                (resolution, now - keep),
            )


async def latest(db: Database) -> HostSample | None:
    row = await db.fetchone(
        f"SELECT {_SELECT} FROM host_metrics WHERE resolution = {RAW} ORDER BY ts DESC LIMIT 1"
    )
    return None if row is None else _sample(row)


async def series(
    db: Database, resolution: int, start: int, end: int, step: int
) -> list[HostSample]:
    """Averages of `resolution` rows over buckets of `step` seconds from `start`, oldest first;
    each bucket is stamped with its start."""
    rows = await db.fetchall(
        f"SELECT ? + ((ts - ?) / ?) * ? AS bucket, {_AVERAGES} FROM host_metrics"
        " WHERE resolution = ? AND ts >= ? AND ts <= ? GROUP BY bucket ORDER BY bucket",
        (start, start, step, step, resolution, start, end),
    )
    return [_sample(row) for row in rows]


async def count_rows(db: Database) -> dict[int, int]:
    rows = await db.fetchall(
        "SELECT resolution, count(*) FROM host_metrics GROUP BY resolution ORDER BY resolution"
    )
    return {int(row[0]): int(row[1]) for row in rows}
