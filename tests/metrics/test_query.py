"""Which resolution and step answer a metrics query (SPEC §13 defaults)."""

import pytest

from dployr.errors import ValidationError
from dployr.metrics.query import Plan, parse_time, plan_query
from dployr.store.metrics import HOUR, MINUTE, RAW

NOW = 1_800_000_000
DAY = 86400


def test_default_steps_are_the_finest_resolution_within_500_points():
    assert plan_query(NOW, NOW - 3600, NOW, None, 10) == Plan(NOW - 3600, NOW, RAW, 10)
    # 12 h of 10 s samples would be 4320 points: minutes (720) are too many too: hours.
    assert plan_query(NOW, NOW - 12 * 3600, NOW, None, 10).step == HOUR
    assert plan_query(NOW, NOW - 6 * 3600, NOW, None, 60) == Plan(NOW - 6 * 3600, NOW, RAW, 60)
    # Two days back: raw samples are gone, minutes are kept (2880 points): hours (48).
    assert plan_query(NOW, NOW - 2 * DAY, NOW - 2 * DAY + 3600, None, 10) == Plan(
        NOW - 2 * DAY, NOW - 2 * DAY + 3600, MINUTE, 60
    )
    # 90 days: 2160 hours, grouped 5 hours a point.
    assert plan_query(NOW, NOW - 90 * DAY, NOW, None, 10) == Plan(
        NOW - 90 * DAY, NOW, HOUR, 5 * HOUR
    )


def test_an_explicit_step_reads_the_coarsest_resolution_that_fits():
    assert plan_query(NOW, NOW - 3600, NOW, 300, 10).resolution == MINUTE
    assert plan_query(NOW, NOW - 3600, NOW, 30, 10).resolution == RAW
    assert plan_query(NOW, NOW - 3600, NOW, 7200, 10).resolution == HOUR


@pytest.mark.parametrize(
    ("start", "end", "step", "field"),
    [(NOW, NOW, None, "from"), (NOW, NOW - 1, None, "from"), (NOW - 90 * DAY, NOW, 1, "step")],
)
def test_bad_queries_name_the_field(start, end, step, field):
    with pytest.raises(ValidationError) as caught:
        plan_query(NOW, start, end, step, 10)
    assert caught.value.details == {"field": field, "reason": caught.value.details["reason"]}


def test_times_are_iso_with_a_zone_or_unix_seconds():
    assert parse_time("to", "2027-01-15T08:00:00Z", 0) == 1_800_000_000
    assert parse_time("to", "1800000000", 0) == 1_800_000_000
    assert parse_time("to", None, 7) == 7
    for bad in ("2027-01-15T08:00:00", "yesterday", "-5", "1e9"):
        with pytest.raises(ValidationError):
            parse_time("to", bad, 0)
