"""The Prometheus text exposition of the host and the agent's counters (prometheus-client)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from dployr.metrics.agent import DURATION_BUCKETS, AgentCounters, Durations
from dployr.metrics.services import Current
from dployr.store.metrics import HostSample

# Host gauges: our sample field → (metric name, help).
HOST_GAUGES = {
    "cpu_percent": ("dployr_host_cpu_percent", "Host CPU use, percent of all cores"),
    "load_1": ("dployr_host_load1", "Host load average over 1 minute"),
    "load_5": ("dployr_host_load5", "Host load average over 5 minutes"),
    "load_15": ("dployr_host_load15", "Host load average over 15 minutes"),
    "memory_used": ("dployr_host_memory_used_bytes", "Host memory in use (total - available)"),
    "memory_percent": ("dployr_host_memory_percent", "Host memory in use, percent"),
    "swap_used": ("dployr_host_swap_used_bytes", "Host swap in use"),
    "swap_percent": ("dployr_host_swap_percent", "Host swap in use, percent"),
    "disk_used": ("dployr_host_disk_used_bytes", "Used bytes on the data dir's mount"),
    "disk_percent": ("dployr_host_disk_percent", "Used space on the data dir's mount, percent"),
    "net_rx_bps": ("dployr_host_network_receive_bytes_per_second", "Received, all but lo"),
    "net_tx_bps": ("dployr_host_network_transmit_bytes_per_second", "Sent, all but lo"),
    "uptime": ("dployr_host_uptime_seconds", "Seconds since the host booted"),
}


@dataclass(frozen=True)
class Snapshot:
    """What one scrape shows, copied on the event loop so the rendering thread reads no
    structure the loop is changing."""

    host: HostSample | None
    requests: dict[tuple[str, str, int], int]
    deployments: dict[str, int]
    durations: dict[str, Durations]
    bus_dropped: int
    webhook_attempts: dict[str, int]
    webhook_deliveries: dict[str, int]
    services: tuple[Current, ...] = ()

    @classmethod
    def take(
        cls,
        host: HostSample | None,
        counters: AgentCounters,
        bus_dropped: int,
        services: Iterable[Current] = (),
    ) -> Snapshot:
        return cls(
            host,
            dict(counters.requests),
            dict(counters.deployments),
            {
                k: Durations(list(v.buckets), v.total, v.count)
                for k, v in counters.durations.items()
            },
            bus_dropped,
            dict(counters.webhook_attempts),
            dict(counters.webhook_deliveries),
            tuple(services),
        )


def render(snapshot: Snapshot) -> tuple[bytes, str]:
    """The exposition and its content type. Blocking (the first call imports prometheus_client):
    run it in a thread."""
    client = importlib.import_module("prometheus_client")
    registry = importlib.import_module("prometheus_client.registry").CollectorRegistry()
    registry.register(_Collector(snapshot))
    return client.generate_latest(registry), client.CONTENT_TYPE_LATEST


class _Collector:
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        core = importlib.import_module("prometheus_client.core")
        snap = self._snapshot
        if snap.host is not None:
            values = asdict(snap.host)
            for key, (name, text) in HOST_GAUGES.items():
                yield core.GaugeMetricFamily(name, text, value=values[key])
        yield from _service_gauges(core, snap.services)
        requests = core.CounterMetricFamily(
            "dployr_http_requests", "HTTP requests answered", labels=["route", "method", "status"]
        )
        for (route, method, status), count in sorted(snap.requests.items()):
            requests.add_metric([route, method, str(status)], count)
        yield requests
        ends = core.CounterMetricFamily(
            "dployr_deployments", "Deployments ended, by result", labels=["result"]
        )
        for result, count in sorted(snap.deployments.items()):
            ends.add_metric([result], count)
        yield ends
        durations = core.HistogramMetricFamily(
            "dployr_deployment_duration_seconds",
            "From a deployment's first step to its end",
            labels=["result"],
        )
        for result, parts in sorted(snap.durations.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*DURATION_BUCKETS, float("inf")), parts.buckets, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            durations.add_metric([result], buckets, parts.total)
        yield durations
        deliveries = core.CounterMetricFamily(
            "dployr_webhook_deliveries",
            "Webhook deliveries ended, by result (delivered, failed)",
            labels=["result"],
        )
        for result, count in sorted(snap.webhook_deliveries.items()):
            deliveries.add_metric([result], count)
        yield deliveries
        attempts = core.CounterMetricFamily(
            "dployr_webhook_attempts",
            "Webhook delivery attempts, by result (success: a 2xx; error: anything else)",
            labels=["result"],
        )
        for result, count in sorted(snap.webhook_attempts.items()):
            attempts.add_metric([result], count)
        yield attempts
        yield core.CounterMetricFamily(
            "dployr_event_bus_dropped_subscribers",
            "Event-bus subscribers dropped for falling behind",
            value=snap.bus_dropped,
        )


# Service gauges: our sample field → (metric name, help); labelled by service name and id.
SERVICE_GAUGES = {
    "cpu_percent": ("dployr_service_cpu_percent", "A service's CPU use, percent of one core"),
    "memory_bytes": ("dployr_service_memory_bytes", "A service's resident memory"),
    "restarts": ("dployr_service_restarts", "Restarts of a service's live instance"),
    "net_rx_bps": (
        "dployr_service_network_receive_bytes_per_second",
        "Bytes a second a service's live instance received (containers only)",
    ),
    "net_tx_bps": (
        "dployr_service_network_transmit_bytes_per_second",
        "Bytes a second a service's live instance sent (containers only)",
    ),
}


def _service_gauges(core: Any, services: tuple[Current, ...]) -> Iterator[Any]:
    for key, (name, text) in SERVICE_GAUGES.items():
        family = core.GaugeMetricFamily(name, text, labels=["service", "service_id"])
        for current in sorted(services, key=lambda c: (c.service_name, c.service_id)):
            value = getattr(current.sample, key)
            if value is None:  # not known (a first sample, a systemd or process target)
                continue
            family.add_metric([current.service_name, current.service_id], value)
        yield family
