"""The engine's stats JSON read the way `docker stats` reads it (pure logic)."""

from __future__ import annotations

from dployr.runtime.docker_stats import cpu_percent, cpu_reading, memory_bytes


def stats(total: int, system: int, usage: int, **details: int) -> dict[str, object]:
    return {
        "cpu_stats": {
            "cpu_usage": {"total_usage": total},
            "system_cpu_usage": system,
            "online_cpus": 2,
        },
        "memory_stats": {"usage": usage, "stats": details},
    }


def test_cpu_percent_is_of_one_core_between_our_own_readings() -> None:
    first = cpu_reading(stats(1_000, 10_000, 0))
    second = cpu_reading(stats(1_500, 12_000, 0))  # a quarter of the host's 2 cores: 50 %
    assert first is not None and second is not None
    assert cpu_percent(None, first, 2) == 0.0  # nothing to compare with yet
    assert cpu_percent(first, second, 2) == 50.0
    assert cpu_percent(second, first, 2) == 0.0  # counters that went back (a restart)


def test_an_engine_without_cgroup_figures_gives_no_reading() -> None:
    # What a nested engine answers ("cannot find cgroup mount destination").
    empty = {"read": "0001-01-01T00:00:00Z", "cpu_stats": {"cpu_usage": {"total_usage": 0}},
             "memory_stats": {}}  # fmt: skip
    assert cpu_reading(empty) is None
    assert memory_bytes(empty) == 0


def test_memory_leaves_out_the_inactive_page_cache() -> None:
    assert memory_bytes(stats(0, 0, 10_000, inactive_file=4_000)) == 6_000  # cgroup v2
    assert memory_bytes(stats(0, 0, 10_000, total_inactive_file=1_000)) == 9_000  # cgroup v1
    assert memory_bytes(stats(0, 0, 10_000)) == 10_000
