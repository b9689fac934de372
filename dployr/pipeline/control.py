"""Service operations beside deploying: start, stop, restart, delete (under the service lock)."""

from __future__ import annotations

import logging
from typing import Any

from dployr.errors import InvalidState
from dployr.ids import now_iso
from dployr.pipeline.deployer import Deployer
from dployr.pipeline.spec import DeploySpec
from dployr.runtime.catalog import CATALOG
from dployr.runtime.protocol import InstanceSpec, InstanceStatus, Resources
from dployr.store import deployments, routes, services
from dployr.store.deployments import Deployment
from dployr.store.services import Service

_LOGGER = logging.getLogger(__name__)


async def live_deployment(deployer: Deployer, service: Service) -> Deployment | None:
    if not service.current_deployment_id:
        return None
    return await deployments.get_deployment(deployer.db, service.current_deployment_id, None)


async def service_status(deployer: Deployer, service: Service) -> tuple[InstanceStatus, int | None]:
    live = await live_deployment(deployer, service)
    if live is None or not live.instance_ref:
        return InstanceStatus("stopped", None, None, 0, None), None
    return await deployer.runtime.status(live.instance_ref), live.host_port


async def start_service(deployer: Deployer, service: Service) -> None:
    async with deployer.service_lock(service.id):
        live = await live_deployment(deployer, service)
        if live is None:
            raise InvalidState(f"Service {service.name} has no live release to start")
        status = await deployer.runtime.status(live.instance_ref)
        if status.status == "running":
            raise InvalidState(f"Service {service.name} is already running")
        await _replace_instance(deployer, service, live)
        await services.set_desired_state(
            deployer.db, service, "running", _event(service, "service.started", live)
        )


async def stop_service(deployer: Deployer, service: Service) -> None:
    async with deployer.service_lock(service.id):
        live = await live_deployment(deployer, service)
        status = await deployer.runtime.status(live.instance_ref if live else None)
        if live is None or status.status == "stopped" or not live.instance_ref:
            raise InvalidState(f"Service {service.name} is already stopped")
        # Stop first: when the engine is down (a 503) the service still wants to run.
        await deployer.runtime.stop(live.instance_ref)
        await services.set_desired_state(
            deployer.db, service, "stopped", _event(service, "service.stopped", live)
        )
        await deployments.update_deployment(deployer.db, live.id, {"instance_ref": None}, None)


async def restart_service(deployer: Deployer, service: Service) -> None:
    """A new container from the live release with the service's current env (so env changes
    apply), on the same host port."""
    async with deployer.service_lock(service.id):
        live = await live_deployment(deployer, service)
        if live is None:
            raise InvalidState(f"Service {service.name} has no live release to restart")
        await _replace_instance(deployer, service, live)
        await services.set_desired_state(
            deployer.db, service, "running", _event(service, "service.started", live)
        )


async def _replace_instance(deployer: Deployer, service: Service, live: Deployment) -> None:
    if live.instance_ref:
        await deployer.runtime.stop(live.instance_ref)
    env = await services.read_env(deployer.db, service.id, deployer.box)
    env_enc, env_public = services.env_snapshot(env, deployer.box)
    instance = await start_instance(deployer, live, {v.key: v.value for v in env}, live.host_port)
    await deployments.update_deployment(
        deployer.db,
        live.id,
        {
            "instance_ref": instance[0],
            "host_port": instance[1],
            "env_enc": env_enc,
            "env_public": env_public,
        },
        None,
    )


async def start_instance(
    deployer: Deployer, deployment: Deployment, env: dict[str, str], host_port: int | None
) -> tuple[str, int | None]:
    """Run a release's artifact again (restart, start, reconcile); a taken port → a fresh one.
    The port is None for a worker, which publishes none."""
    spec = DeploySpec.from_json(deployment.spec)
    assert deployment.artifact is not None
    run_cmd = None if CATALOG[spec.runtime].templated else spec.run_cmd
    instance_spec = InstanceSpec(
        deployment.service_id,
        deployment.service_name,
        deployment.id,
        deployment.number,
        deployment.artifact,
        spec.port,
        host_port,
        env,
        Resources(**spec.resources),
        run_cmd,
    )
    try:
        instance = await deployer.runtime.start(instance_spec)
    except Exception:
        if host_port is None:
            raise
        _LOGGER.warning("port %s is taken; %s gets a fresh one", host_port, deployment.id)
        instance = await deployer.runtime.start(
            InstanceSpec(**{**instance_spec.__dict__, "host_port": None})
        )
    return instance.ref, instance.host_port


async def delete_service(deployer: Deployer, service: Service) -> None:
    """Stop everything of the service, remove its containers, images, routes, cache and rows."""
    await deployer.cancel_service(service.id)
    async with deployer.service_lock(service.id):
        # Its routes go first (the proxy stops sending traffic), then its instances.
        owned = await routes.routes_of_service(deployer.db, service.id)
        async with (
            deployer.router.changing(remove={r.route.id for r in owned}),
            deployer.db.transaction() as conn,
        ):
            await routes.delete_routes(conn, owned)
        for instance in await deployer.runtime.instances():
            if instance.service_id == service.id:
                await deployer.runtime.stop(instance.ref, grace=5)
        for deployment in await deployments.deployments_of(deployer.db, service.id):
            if deployer.is_own_image(deployment.artifact, service.id):
                assert deployment.artifact is not None
                await deployer.runtime.remove_artifact(deployment.artifact)
        await deployer.remove_cache(service.id)
        await services.delete_service(deployer.db, service.id)


def _event(service: Service, type_: str, live: Deployment) -> tuple[str, dict[str, Any]]:
    return type_, {
        "service_id": service.id,
        "service_name": service.name,
        "project_id": service.project_id,
        "deployment_id": live.id,
        "at": now_iso(),
    }
