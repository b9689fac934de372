"""The sparkline and units of `dployr instances metrics` (pure functions)."""

from __future__ import annotations

import pytest

from dployr.cli.charts import (
    BLOCKS,
    human_bytes,
    human_rate,
    human_seconds,
    on_grid,
    parse_span,
    percent,
    resample,
    sparkline,
)


def test_an_empty_series_draws_nothing() -> None:
    assert sparkline([], 20) == ""
    assert sparkline([1.0, 2.0], 0) == ""


def test_a_series_of_gaps_is_blank() -> None:
    assert sparkline([None, None, None], 5) == "     "


def test_one_point_fills_its_width_at_mid_height() -> None:
    assert sparkline([42.0], 1) == "▄"
    assert sparkline([42.0], 4) == "▄▄▄▄"


def test_a_flat_series_is_mid_height_and_zero_is_the_floor() -> None:
    assert sparkline([3.0] * 10, 10) == "▄" * 10
    assert sparkline([0.0] * 10, 10) == "▁" * 10


def test_a_ramp_spans_every_block_from_lowest_to_highest() -> None:
    assert sparkline([float(v) for v in range(8)], 8) == BLOCKS
    assert sparkline([10.0, 20.0], 2) == "▁█"  # scaled to the data, not from zero


def test_gaps_stay_gaps_between_samples() -> None:
    assert sparkline([0.0, None, 7.0, None], 4) == "▁ █ "


def test_a_long_series_is_averaged_into_the_width() -> None:
    values: list[float | None] = [0.0] * 50 + [10.0] * 50
    line = sparkline(values, 10)
    assert len(line) == 10
    assert line == "▁" * 5 + "█" * 5
    # A column is the mean of what it covers; gaps inside it do not count as zero.
    assert resample([2.0, None, 4.0, None], 2) == [2.0, 4.0]
    assert resample([1.0, 3.0, 5.0, 7.0], 2) == [2.0, 6.0]


def test_a_short_series_is_stretched_to_the_width() -> None:
    assert resample([1.0, 2.0], 4) == [1.0, 1.0, 2.0, 2.0]
    assert sparkline([0.0, None, 7.0], 6) == "▁▁  ██"
    assert len(sparkline([1.0, 2.0, 3.0], 100)) == 100


def test_samples_land_in_their_time_buckets() -> None:
    # 60 s from t=1000 in 10 s buckets; the API leaves empty buckets out.
    grid = on_grid([(1000, 1.0), (1025, 3.0), (1059, 5.0), (2000, 9.0)], 1000, 1060, 10)
    assert grid == [1.0, None, 3.0, None, None, 5.0]
    assert on_grid([], 1000, 1005, 10) == [None]
    assert on_grid([(1000, 1.0)], 1000, 1000, 10) == []


def test_human_units() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024**3) == "3.0 GiB"
    assert human_bytes(None) == "-"
    assert human_rate(2048) == "2.0 KiB/s"
    assert [percent(v) for v in (0.0, 0.034, 12.345, 100.0, None)] == [
        "0.0%",
        "0.03%",
        "12.3%",
        "100.0%",
        "-",
    ]
    assert human_seconds(42) == "42s"
    assert human_seconds(4000) == "1h 6m"
    assert human_seconds(93784) == "1d 2h"


def test_spans_of_time() -> None:
    spans = [parse_span(s) for s in ("30m", "1h", "6h", "1d", "90s", "120")]
    assert spans == [1800, 3600, 21600, 86400, 90, 120]
    for bad in ("", "h", "-1h", "0m", "1y", "1.5h"):
        with pytest.raises(ValueError, match="not a span of time"):
            parse_span(bad)
