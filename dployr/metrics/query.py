"""Which stored resolution and step answer a metrics query (SPEC §13 defaults), pure logic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dployr.errors import ValidationError
from dployr.store.metrics import HOUR, MINUTE, RAW, RETENTION

MAX_POINTS = 500  # a default step gives at most this many points
MAX_ASKED_POINTS = 5000  # an explicit step that gives more is refused (400)
MAX_SPAN = RETENTION[HOUR]  # nothing older is stored


@dataclass(frozen=True)
class Plan:
    start: int
    end: int
    resolution: int  # the stored resolution read (0 = raw)
    step: int  # seconds a point


def parse_time(name: str, raw: str | None, default: int) -> int:
    """Unix seconds from ISO 8601 with a zone (`2026-01-01T00:00:00Z`) or unix seconds."""
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= 12:
        return int(raw)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValidationError(
            name, "must be an ISO 8601 time with a zone (2026-01-01T00:00:00Z) or unix seconds"
        )
    return int(moment.timestamp())


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_query(now: int, start: int, end: int, step: int | None, interval: int) -> Plan:
    """The finest resolution still kept at `start`; by default the finest step of a stored
    resolution giving at most MAX_POINTS points, else hours grouped to fit."""
    if start >= end:
        raise ValidationError("from", "must be before to")
    span = end - start
    seconds = {RAW: interval, MINUTE: MINUTE, HOUR: HOUR}
    kept = [res for res in (RAW, MINUTE, HOUR) if start >= now - RETENTION[res]] or [HOUR]
    if step is None:
        for res in kept:
            if span // seconds[res] <= MAX_POINTS:
                return Plan(start, end, res, seconds[res])
        hours = -(-span // (MAX_POINTS * HOUR))
        return Plan(start, end, HOUR, hours * HOUR)
    if span // step > MAX_ASKED_POINTS:
        raise ValidationError("step", f"gives more than {MAX_ASKED_POINTS} points from..to")
    # The coarsest kept resolution no coarser than the step: fewest rows read for the same points.
    fitting = [res for res in kept if seconds[res] <= step] or [kept[0]]
    return Plan(start, end, fitting[-1], step)
