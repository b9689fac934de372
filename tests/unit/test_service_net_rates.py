"""A service's network rates from its instance's cumulative counters (pure logic)."""

from __future__ import annotations

from dployr.metrics.services import Counters, counters, net_rates
from dployr.runtime.docker_stats import network_bytes
from dployr.runtime.protocol import Usage


def test_a_rate_is_the_delta_over_the_time_between_two_readings() -> None:
    first = Counters(at=100.0, restarts=0, rx=1_000, tx=500)
    second = Counters(at=110.0, restarts=0, rx=21_000, tx=500)
    assert net_rates(None, first) == (None, None)  # a first reading: nothing to compare with
    assert net_rates(first, second) == (2_000.0, 0.0)
    assert net_rates(first, None) == (None, None)  # no counters now (systemd, process)


def test_a_restart_or_counters_going_back_give_no_rate_never_a_negative_one() -> None:
    before = Counters(at=100.0, restarts=0, rx=50_000, tx=9_000)
    assert net_rates(before, Counters(110.0, 0, 400, 100)) == (None, None)  # counters reset
    assert net_rates(before, Counters(110.0, 0, 60_000, 100)) == (None, None)  # one went back
    # Restarted, and already past the old counts: still a new instance's counters.
    assert net_rates(before, Counters(110.0, 1, 90_000, 20_000)) == (None, None)
    assert net_rates(before, Counters(100.0, 0, 60_000, 9_000)) == (None, None)  # no time


def test_counters_come_from_a_container_usage_only() -> None:
    assert counters(5.0, Usage(1.0, 10, 0)) is None  # a process or systemd instance
    assert counters(5.0, Usage(1.0, 10, 2, 30, 40)) == Counters(5.0, 2, 30, 40)


def test_the_engine_stats_interfaces_are_summed() -> None:
    stats = {"networks": {"eth0": {"rx_bytes": 100, "tx_bytes": 7},
                          "eth1": {"rx_bytes": 20, "tx_bytes": 3}}}  # fmt: skip
    assert network_bytes(stats) == (120, 10)
    assert network_bytes({}) is None  # host networking: no interface figures
    assert network_bytes({"networks": {}}) is None
