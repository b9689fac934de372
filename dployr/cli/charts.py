"""Terminal pictures of a metrics series: sparklines and human units (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"
GAP = " "  # a column with no sample (the daemon was down, or the service did not run)


def sparkline(values: Sequence[float | None], width: int) -> str:
    """`values` (oldest first, None for no sample) drawn in `width` columns of ▁…█, scaled
    from the lowest to the highest value present. Longer series are averaged into columns,
    shorter ones stretched, so a column always stands for the same span of time. A flat
    series sits at the bottom when it is zero (nothing happens), mid-height otherwise."""
    if width < 1 or not values:
        return ""
    columns = resample(values, width)
    present = [v for v in columns if v is not None]
    if not present:
        return GAP * width
    low, high = min(present), max(present)
    top = len(BLOCKS) - 1
    if high == low:
        flat = BLOCKS[0] if high == 0 else BLOCKS[top // 2]
        return "".join(GAP if v is None else flat for v in columns)
    return "".join(
        GAP if v is None else BLOCKS[round((v - low) / (high - low) * top)] for v in columns
    )


def resample(values: Sequence[float | None], width: int) -> list[float | None]:
    """`width` columns: column i covers values[i*n/width : (i+1)*n/width] (at least one),
    the average of the samples in it, or None when it has none."""
    count = len(values)
    columns: list[float | None] = []
    for i in range(width):
        first = i * count // width
        last = max((i + 1) * count // width, first + 1)
        present = [v for v in values[first:last] if v is not None]
        columns.append(sum(present) / len(present) if present else None)
    return columns


def on_grid(
    points: Sequence[tuple[int, float | None]], start: int, end: int, step: int
) -> list[float | None]:
    """Samples `(unix seconds, value)` placed in the buckets of `step` seconds from `start`
    to `end`: the API leaves out buckets with no sample; here they are None (a gap)."""
    if step < 1 or end <= start:
        return []
    grid: list[float | None] = [None] * -(-(end - start) // step)
    for ts, value in points:
        index = (ts - start) // step
        if 0 <= index < len(grid):
            grid[index] = value
    return grid


def human_bytes(value: float | None, suffix: str = "") -> str:
    """1536 → `1.5 KiB`, 3.2e9 → `3.0 GiB` (powers of 1024, as `free -h` shows them)."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            shown = f"{size:.0f}" if unit == "B" else f"{size:.1f}"
            return f"{shown} {unit}{suffix}"
        size /= 1024
    raise AssertionError("unreachable")


def human_rate(value: float | None) -> str:
    return human_bytes(value, "/s")


def percent(value: float | None) -> str:
    """`12.3%`; under 1%, two decimals (an idle service's CPU is 0.03%, not 0.0%)."""
    if value is None:
        return "-"
    return f"{value:.2f}%" if 0 < abs(value) < 1 else f"{value:.1f}%"


def human_seconds(seconds: float | None) -> str:
    """An uptime: 93784 → `1d 2h`, 4000 → `1h 6m`, 42 → `42s`."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def parse_span(text: str) -> int:
    """`30m`, `1h`, `6h`, `1d`, `90s` (or bare seconds) → seconds; ValueError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    raw = text.strip().lower()
    unit = units.get(raw[-1:], 0)
    number = raw[:-1] if unit else raw
    if not unit:
        unit = 1
    if not number.isdigit() or int(number) < 1:
        raise ValueError(f"not a span of time: {text!r} (say 30m, 1h, 6h, 1d)")
    return int(number) * unit
