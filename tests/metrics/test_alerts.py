"""Host thresholds fire once and resolve once; a crash episode is reported once (pure logic)."""

from __future__ import annotations

from dataclasses import replace

from dployr.config import AlertsConfig
from dployr.metrics.alerts import CrashEpisodes, HostAlerts
from dployr.runtime.protocol import InstanceStatus
from dployr.store.metrics import HostSample

ZERO = HostSample(0, *([0.0] * 13))


def cpu(value: float) -> HostSample:
    return replace(ZERO, cpu_percent=value)


def test_a_threshold_fires_once_and_resolves_once() -> None:
    alerts = HostAlerts(AlertsConfig(cpu_percent=80, memory_percent=0, disk_percent=0, samples=2))
    seen = [[(a.metric, a.state) for a in alerts.check(cpu(v))] for v in
            (95, 50, 95, 95, 99, 97, 50, 90, 50, 50, 40, 30)]  # fmt: skip
    # One busy sample (95 then 50) is nothing; two in a row fire; one calm sample between busy
    # ones changes nothing; two calm ones in a row resolve.
    assert seen == [[], [], [], [("cpu_percent", "firing")], [], [], [], [], [],
                    [("cpu_percent", "resolved")], [], []]  # fmt: skip


def test_a_zero_threshold_is_off() -> None:
    alerts = HostAlerts(AlertsConfig(cpu_percent=0, memory_percent=0, disk_percent=0, samples=1))
    assert alerts.check(replace(ZERO, cpu_percent=100, memory_percent=100)) == []


def status(state: str, restarts: int, ref: str = "c1") -> InstanceStatus:
    return InstanceStatus(state, ref, None, restarts, None)


def test_a_crash_loop_is_one_episode_until_it_runs_healthy() -> None:
    episodes = CrashEpisodes(healthy_seconds=30)
    looks = [
        (0, status("running", 0), False),  # first look: healthy
        (10, status("running", 1), True),  # restarted since: an episode begins
        (20, status("crashed", 2), False),  # the same episode, however many samples
        (30, status("running", 3), False),
        (40, status("running", 3), False),  # up 10 s: not healthy for long enough yet
        (70, status("running", 3), False),  # 40 s without a restart: the episode ends
        (80, status("running", 4), True),  # a new episode
        (90, status("running", 0, ref="c2"), False),  # a new instance starts afresh
        (100, status("crashed", 0, ref="c2"), True),
    ]
    for now, look, begins in looks:
        assert episodes.observe("svc", look, now) is begins, (now, look)


def test_a_first_look_at_a_crashed_instance_begins_an_episode() -> None:
    episodes = CrashEpisodes(healthy_seconds=30)
    assert episodes.observe("svc", status("running", 7), 0) is False  # old restarts: not news
    episodes.forget_others(set())
    assert episodes.observe("svc", status("crashed", 7), 10) is True
