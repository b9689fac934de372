"""The agent's own counters (HTTP requests, deployment ends), kept in plain Python until scraped."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Seconds: a deploy takes from a second (an image source) to many minutes (a cold build).
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
ENDS = {
    "deployment.succeeded": "succeeded",
    "deployment.failed": "failed",
    "deployment.cancelled": "cancelled",
}
_MAX_TRACKED = 10_000  # deployments whose start is remembered (bounded whatever happens)


@dataclass
class Durations:
    """A histogram's raw parts: per-bucket counts (not cumulative), the sum and the count."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        index = next(
            (i for i, bound in enumerate(DURATION_BUCKETS) if seconds <= bound),
            len(DURATION_BUCKETS),
        )
        self.buckets[index] += 1
        self.total += seconds
        self.count += 1


class AgentCounters:
    """Counted from the start; prometheus_client is only imported when /metrics is scraped."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()  # (route, method, status)
        self.deployments: Counter[str] = Counter()  # result
        self.durations: dict[str, Durations] = {}  # result → seconds from start to end
        self._started: dict[str, float] = {}
        self.webhook_attempts: Counter[str] = Counter()  # success | error
        self.webhook_deliveries: Counter[str] = Counter()  # delivered | failed (a delivery's end)

    def count_request(self, route: str, method: str, status: int) -> None:
        self.requests[(route, method, status)] += 1

    def count_attempt(self, status: str, ended: int) -> None:
        """One webhook attempt recorded with its delivery's new status (pending: a retry
        comes); `ended`: the deliveries it ended (a delivered one, or failed ones)."""
        self.webhook_attempts["success" if status == "delivered" else "error"] += 1
        if ended:
            self.webhook_deliveries["delivered" if status == "delivered" else "failed"] += ended

    def observe_event(self, event: Any) -> None:
        """Fed every committed event: a deployment starts with its first progress event and
        ends with one of ENDS, from wherever it ends (a run, a queued cancel, a reconcile)."""
        deployment_id = event.data.get("deployment_id") if isinstance(event.data, dict) else None
        if deployment_id is None:
            return
        if event.type == "deployment.progress":
            if deployment_id not in self._started and len(self._started) < _MAX_TRACKED:
                self._started[deployment_id] = time.monotonic()
            return
        result = ENDS.get(event.type)
        if result is None:
            return
        self.deployments[result] += 1
        started = self._started.pop(deployment_id, None)
        if started is not None:  # not when it started before this daemon did
            self.durations.setdefault(result, Durations()).observe(time.monotonic() - started)
