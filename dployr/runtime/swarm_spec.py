"""The Swarm service spec of a release (SPEC §15), built as the engine's JSON: pure, so that
what a multi-node swarm would get (placement, the registry image, update and rollback, ports)
is checked by unit tests on a machine that runs one node only."""

from __future__ import annotations

from typing import Any

from dployr.runtime.catalog import CATALOG
from dployr.runtime.docker_volumes import volume_name
from dployr.runtime.protocol import InstanceSpec
from dployr.runtime.swarm_names import PROBE, PROBE_TRUE, swarm_service

SECOND = 1_000_000_000  # the engine's durations are nanoseconds
LABEL_AGENT = "dployr.agent"
LABEL_SERVICE = "dployr.service"
LABEL_DEPLOYMENT = "dployr.deployment"
LABEL_START = "dployr.start"  # on the service only: which start made its spec (the ref's end)
HEALTH_INTERVAL = 1  # seconds between a task's checks of itself
HEALTH_RETRIES = 3  # failed checks in a row after the start period: the task is unhealthy
# After each new task is healthy, Swarm watches it this long before the next one (a task that
# dies meanwhile fails the update, which then rolls back).
MONITOR = 3
STOP_GRACE = 10


def probe(port: int | None, path: str | None) -> list[str] | None:
    """The task's health check, run inside it by the engine with the static busybox the image
    carries: an HTTP GET answered 2xx/3xx, or a TCP connection taken (inside the task's own
    namespace nothing forwards a port, so a connection proves a listener). None: a worker."""
    if port is None:
        return None
    if path is None:  # connected: `true` runs and nc ends 0 (whether the app closes or not)
        return ["CMD", PROBE, "nc", "-w", "2", "127.0.0.1", str(port), "-e", PROBE_TRUE]
    # No `-T`: Debian's static busybox 1.35 crashes on it; the engine's timeout stops the check.
    return ["CMD", PROBE, "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}{path}"]


def service_spec(spec: InstanceSpec, agent_id: str, network: str) -> dict[str, Any]:
    """The whole ServiceSpec of a release: one Swarm service per dployr service, in dnsrr mode
    on the owner's overlay, updated one task at a time and rolled back by Swarm itself when a
    new task fails its check."""
    labels = {
        LABEL_AGENT: agent_id,
        LABEL_SERVICE: spec.service_id,
        LABEL_DEPLOYMENT: spec.deployment_id,
    }
    env = dict(spec.env)
    if spec.port is not None:
        env["PORT"] = str(spec.port)
    container: dict[str, Any] = {
        "Image": spec.artifact,
        "Labels": labels,
        "Env": [f"{key}={value}" for key, value in env.items()],
        "Init": True,
        "StopGracePeriod": STOP_GRACE * SECOND,
        "Mounts": [
            {"Type": "volume", "Source": volume_name(m), "Target": m.path} for m in spec.volumes
        ],
    }
    if spec.run_cmd and not CATALOG[spec.runtime].templated:
        container["Command"] = ["/bin/sh", "-c", spec.run_cmd]
    test = probe(spec.port, spec.health_path)
    if test is not None:
        container["Healthcheck"] = {
            "Test": test,
            "Interval": HEALTH_INTERVAL * SECOND,
            "Timeout": 2 * SECOND,
            "Retries": HEALTH_RETRIES,
            "StartPeriod": spec.health_timeout * SECOND,
        }
    limits: dict[str, int] = {}
    if spec.resources.cpus:
        limits["NanoCPUs"] = int(spec.resources.cpus * 1e9)
    if spec.resources.memory:
        limits["MemoryBytes"] = memory_bytes(spec.resources.memory)
    update = {
        "Parallelism": 1,
        "Delay": 0,
        "FailureAction": "rollback",
        "Monitor": MONITOR * SECOND,
        "MaxFailureRatio": 0,
        "Order": spec.strategy,  # stop-first (SPEC §14): an old task stops before a new one
    }
    return {
        "Name": swarm_service(spec.service_id),
        "Labels": {**labels, LABEL_START: spec.start_id},
        "TaskTemplate": {
            "ContainerSpec": container,
            "Resources": {"Limits": limits},
            "RestartPolicy": {"Condition": "any", "Delay": SECOND, "MaxAttempts": 0},
            "Placement": {"Constraints": list(spec.placement)},
            "Networks": [{"Target": network}],
            "LogDriver": {"Name": "json-file", "Options": {"max-size": "10m", "max-file": "3"}},
        },
        "Mode": {"Replicated": {"Replicas": spec.replicas}},
        "UpdateConfig": update,
        "RollbackConfig": {**update, "FailureAction": "pause"},
        "EndpointSpec": {"Mode": "dnsrr"},
    }


def memory_bytes(memory: str) -> int:
    """`512m`, `1g` (validated at the API edge) as bytes."""
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = memory.strip().lower()
    if text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def start_of(service: dict[str, Any], which: str = "Spec") -> str | None:
    """The start (a release, a restart) that made a service's spec (or its PreviousSpec)."""
    spec = service.get(which) or {}
    return (spec.get("Labels") or {}).get(LABEL_START)
