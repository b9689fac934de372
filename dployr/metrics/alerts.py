"""When a host threshold is crossed or cleared, and when a service's crash episode begins."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dployr.config import AlertsConfig
from dployr.runtime.protocol import InstanceStatus
from dployr.store.metrics import HostSample

WATCHED = ("cpu_percent", "memory_percent", "disk_percent")


@dataclass(frozen=True)
class Alert:
    metric: str
    state: str  # firing | resolved
    value: float
    threshold: float

    def data(self, instance_id: str, at: str) -> dict[str, Any]:
        return {"instance_id": instance_id, **asdict(self), "at": at}


class HostAlerts:
    """Each threshold fires once when `samples` samples in a row are over it and resolves once
    when as many in a row are back at or under it; anything between changes nothing."""

    def __init__(self, config: AlertsConfig) -> None:
        self._thresholds = {m: getattr(config, m) for m in WATCHED if getattr(config, m) > 0}
        self._needed = config.samples
        self._firing: set[str] = set()
        self._streak: dict[str, int] = {}  # samples in a row on the other side of the state

    def check(self, sample: HostSample) -> list[Alert]:
        alerts = []
        for metric, threshold in self._thresholds.items():
            value = float(getattr(sample, metric))
            over = value > threshold
            if over == (metric in self._firing):
                self._streak[metric] = 0
                continue
            self._streak[metric] = self._streak.get(metric, 0) + 1
            if self._streak[metric] < self._needed:
                continue
            self._streak[metric] = 0
            if over:
                self._firing.add(metric)
            else:
                self._firing.discard(metric)
            alerts.append(Alert(metric, "firing" if over else "resolved", value, threshold))
        return alerts


@dataclass
class _Seen:
    ref: str
    restarts: int
    in_episode: bool
    steady_since: float  # when it was last seen crashed or restarting (or first seen)


class CrashEpisodes:
    """A service crashes when its live instance restarted since the last look or reads
    `crashed`; that opens an episode (reported once), which ends after `healthy_seconds` of
    running with no restart. A new instance (a deploy, a start) starts afresh."""

    def __init__(self, healthy_seconds: float) -> None:
        self._healthy = healthy_seconds
        self._seen: dict[str, _Seen] = {}

    def observe(self, service_id: str, status: InstanceStatus, now: float) -> bool:
        """True when this look begins a crash episode (the one time to report it)."""
        ref = status.ref or ""
        seen = self._seen.get(service_id)
        if seen is None or seen.ref != ref:
            # First look at this instance: its earlier restarts (before a daemon restart) are
            # not news; being down now is.
            seen = _Seen(ref, status.restarts, False, now)
            self._seen[service_id] = seen
            crashed = status.status == "crashed"
        else:
            crashed = status.status == "crashed" or status.restarts > seen.restarts
            seen.restarts = status.restarts
        if crashed:
            seen.steady_since = now
            if not seen.in_episode:
                seen.in_episode = True
                return True
            return False
        if status.status != "running":
            seen.steady_since = now  # stopped, starting, unknown: not yet healthy again
        elif seen.in_episode and now - seen.steady_since >= self._healthy:
            seen.in_episode = False
        return False

    def in_episode(self, service_id: str) -> bool:
        seen = self._seen.get(service_id)
        return seen is not None and seen.in_episode

    def forget_others(self, service_ids: set[str]) -> None:
        """Services deleted, stopped or with no live instance any more."""
        for gone in set(self._seen) - service_ids:
            del self._seen[gone]
