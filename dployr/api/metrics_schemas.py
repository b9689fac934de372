"""JSON Schemas of the instance and metrics responses (documented in OpenAPI)."""

from __future__ import annotations

from dployr.api.schemas import TIME, Schema, obj, page_of, ref
from dployr.store.metrics import VALUES

__all__ = ["COMPONENTS", "ref"]

NUMBER: Schema = {"type": "number"}
RATE: Schema = {
    "type": ["number", "null"],
    "minimum": 0,
    "description": "bytes a second (containers only; null: not known)",
}

COMPONENTS: dict[str, Schema] = {
    "Instance": obj(
        [
            "id",
            "hostname",
            "os",
            "kernel",
            "cpu_count",
            "memory_total",
            "disk_total",
            "uptime",
            "agent_version",
            "docker_version",
            "proxy",
            "status",
        ],
        {
            "id": {"type": "string", "pattern": "^agt_"},
            "hostname": {"type": "string"},
            "os": {"type": "string"},
            "kernel": {"type": "string"},
            "cpu_count": {"type": "integer", "minimum": 1},
            "memory_total": {"type": "integer", "description": "bytes"},
            "disk_total": {"type": "integer", "description": "bytes, the data dir's mount"},
            "uptime": {"type": "number", "description": "seconds since the host booted"},
            "agent_version": {"type": "string"},
            "docker_version": {"type": ["string", "null"]},
            "proxy": {"type": ["string", "null"]},
            "status": {"const": "online"},
        },
    ),
    "InstancePage": page_of("Instance"),
    "HostSample": obj(
        ["timestamp", *VALUES],
        {"timestamp": TIME, **{name: NUMBER for name in VALUES}},
    ),
    "ServiceSample": obj(
        ["timestamp", "cpu_percent", "memory_bytes", "restarts", "net_rx_bps", "net_tx_bps"],
        {
            "timestamp": TIME,
            "cpu_percent": {"type": "number", "description": "percent of one core"},
            "memory_bytes": {"type": "number", "description": "resident, without page cache"},
            "restarts": {"type": "integer", "description": "the instance's restarts"},
            "net_rx_bps": RATE,
            "net_tx_bps": RATE,
        },
    ),
    "ServiceMetrics": obj(
        ["service_id", "current", "series", "from", "to", "step"],
        {
            "service_id": {"type": "string", "pattern": "^svc_"},
            "current": {"oneOf": [ref("ServiceSample"), {"type": "null"}]},
            "series": {"type": "array", "items": ref("ServiceSample")},
            "from": TIME,
            "to": TIME,
            "step": {"type": "integer", "minimum": 1, "description": "seconds a point"},
        },
    ),
    "InstanceMetrics": obj(
        ["current", "series", "from", "to", "step"],
        {
            "current": {"oneOf": [ref("HostSample"), {"type": "null"}]},
            "series": {"type": "array", "items": ref("HostSample")},
            "from": TIME,
            "to": TIME,
            "step": {"type": "integer", "minimum": 1, "description": "seconds a point"},
        },
    ),
}
