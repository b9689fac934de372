"""Scaling a swarm service (SPEC §15): a new task count without a new release."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from dployr.errors import InvalidState, ValidationError
from dployr.pipeline.deployer import Deployer
from dployr.store import deployments, services
from dployr.store.services import Service


@runtime_checkable
class Scalable(Protocol):
    """A target whose instance is a set of tasks that can grow and shrink in place (swarm)."""

    async def scale(self, ref: str, replicas: int) -> None: ...


async def scale_service(deployer: Deployer, service: Service, replicas: int) -> None:
    """Record the service's new scale, then ask Swarm for it; under the service lock, so a
    deployment of the service finishes (and goes live, or not) first."""
    async with deployer.service_lock(service.id):
        fresh = await services.get_service(deployer.db, service.id, None)
        live = None
        if fresh is not None and fresh.current_deployment_id:
            live = await deployments.get_deployment(deployer.db, fresh.current_deployment_id, None)
        if live is None or not live.instance_ref:
            raise InvalidState(f"Service {service.name} has no live release to scale")
        if live.spec["target"] != "swarm":
            raise ValidationError(
                "replicas",
                f"scale is for swarm services: {service.name} runs on the "
                f"{live.spec['target']} target, one instance (deploy it with target swarm "
                "to run several)",
            )
        target = deployer.target_of(live)
        if not isinstance(target, Scalable):  # a target registry without the swarm target
            raise ValidationError("replicas", f"the {target.name} target cannot scale")
        await services.set_replicas(deployer.db, service.id, replicas)
        await target.scale(live.instance_ref, replicas)
