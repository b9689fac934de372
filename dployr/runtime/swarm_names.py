"""What the swarm target (SPEC §15) calls things on the Swarm: one place, for the target, the
swarm proxy and the databases that join an owner's overlay."""

from __future__ import annotations

from dployr.config import Config

# Where a release's image carries the static busybox its task health check runs (a Swarm
# HEALTHCHECK runs inside the task: readiness never needs the host to reach the overlay).
PROBE = "/.dployr/busybox"
PROBE_TRUE = "/.dployr/true"  # a link to it: `true`


def swarm_service(service_id: str) -> str:
    """A dployr service's Swarm service, one for all its releases: `tasks.<this>` answers on
    its owner's overlay with the address of every task (dnsrr: no IPVS on a small VPS)."""
    return "dployr-" + service_id.replace("_", "-")


def overlay_network(config: Config, owner_id: str) -> str:
    """The owner's attachable overlay: their services, databases and the swarm proxy join it."""
    return f"{config.swarm.network}-{owner_id}"


def upstream(service_id: str, port: int) -> str:
    """What the swarm proxy dials for a service: every task's address, by the overlay's DNS."""
    return f"tasks.{swarm_service(service_id)}:{port}"


def registry_image(registry: str, service_id: str, number: int) -> str:
    """A release's image in `[swarm] registry`, which every node pulls (SPEC §15)."""
    return f"{registry}/dployr/{service_id}:{number}"
