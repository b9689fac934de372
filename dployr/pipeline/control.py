"""Service operations beside deploying: start, stop, restart, delete (under the service lock)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from typing import Any

from dployr.errors import DployrError, InvalidState, Unavailable
from dployr.ids import now_iso
from dployr.pipeline.deployer import Deployer
from dployr.pipeline.health import instance_ready
from dployr.pipeline.instances import (
    bring_back,
    is_down,
    start_instance,
    stops_first,
    take_down,
)
from dployr.pipeline.spec import DeploySpec, upstream_of
from dployr.runtime.protocol import InstanceStatus, RuntimeFailure, Target
from dployr.store import deployments, routes, services, volumes
from dployr.store.deployments import Deployment
from dployr.store.services import Service
from dployr.tasks import run_to_end, undone_on_cancel

_LOGGER = logging.getLogger(__name__)


async def live_deployment(deployer: Deployer, service: Service) -> Deployment | None:
    if not service.current_deployment_id:
        return None
    return await deployments.get_deployment(deployer.db, service.current_deployment_id, None)


async def service_status(deployer: Deployer, service: Service) -> tuple[InstanceStatus, int | None]:
    live = await live_deployment(deployer, service)
    if live is None or not live.instance_ref:
        return InstanceStatus("stopped", None, None, 0, None), None
    return await deployer.target_of(live).status(live.instance_ref), live.host_port


async def start_service(deployer: Deployer, service: Service) -> None:
    async with deployer.service_lock(service.id):
        live = await live_deployment(deployer, service)
        if live is None:
            raise InvalidState(f"Service {service.name} has no live release to start")
        status = await deployer.target_of(live).status(live.instance_ref)
        if status.status == "running":
            raise InvalidState(f"Service {service.name} is already running")
        # A stopped or crash-looping container serves nothing: it goes without a drain, once
        # the new one took over (should that fail, the row still names what is there).
        await _replace_instance(deployer, service, live, drain=False)
        await services.set_desired_state(
            deployer.db, service, "running", _event(service, "service.started", live)
        )


async def stop_service(deployer: Deployer, service: Service) -> None:
    async with deployer.service_lock(service.id):
        live = await live_deployment(deployer, service)
        if live is None or not live.instance_ref:
            raise InvalidState(f"Service {service.name} is already stopped")
        target = deployer.target_of(live)
        if (await target.status(live.instance_ref)).status == "stopped":
            raise InvalidState(f"Service {service.name} is already stopped")
        # The proxy answers 503 for it first (not a dead upstream's 502), then it stops. When
        # the engine cannot stop it (a 503), the proxy is pointed back and nothing changed.
        async with deployer.router.changing(point={service.id: []}):
            await target.stop(live.instance_ref)
            await services.set_desired_state(
                deployer.db, service, "stopped", _event(service, "service.stopped", live)
            )
            await deployments.update_deployment(deployer.db, live.id, {"instance_ref": None}, None)


async def restart_service(deployer: Deployer, service: Service) -> None:
    """Blue/green, like a release: a new instance of the live release with the service's
    current env (so env changes apply) starts beside the old one, passes the health check,
    takes the traffic; then the old one drains and stops."""
    async with deployer.service_lock(service.id):
        live = await live_deployment(deployer, service)
        if live is None:
            raise InvalidState(f"Service {service.name} has no live release to restart")
        await _replace_instance(deployer, service, live)
        await services.set_desired_state(
            deployer.db, service, "running", _event(service, "service.started", live)
        )


async def _replace_instance(
    deployer: Deployer, service: Service, live: Deployment, *, drain: bool = True
) -> None:
    """A new instance of `live` on a fresh port; the old one (when there is one) serves until
    the new one is healthy and the proxy points at it. A new instance that fails its check is
    removed and the old one keeps serving, untouched. With `strategy: stop-first` the old one
    stops first (the proxy answers 503 meanwhile), and is started again should the new one
    fail or the restart be cancelled."""
    stopped = None
    if stops_first(live) and live.instance_ref:
        try:
            await take_down(deployer, live)
        except BaseException:  # refused (it still runs), or a cancel after it stopped
            if await run_to_end(is_down(deployer, live)):
                await run_to_end(bring_back(deployer, live))
            raise
        stopped, live = live, replace(live, instance_ref=None)
    try:
        await _start_and_switch(deployer, service, live, drain=drain)
    except Unavailable as err:
        if stopped is None:
            raise
        said = await run_to_end(bring_back(deployer, stopped))
        health = (err.details or {}).get("health")
        raise Unavailable(
            f"The new instance of {service.name} failed its health check ({health}); "
            f"stop-first had stopped the old one: {said}",
            details=err.details,
        ) from err
    except BaseException:
        if stopped is not None:
            await run_to_end(bring_back(deployer, stopped))
        raise


async def _start_and_switch(
    deployer: Deployer, service: Service, live: Deployment, *, drain: bool
) -> None:
    env = await services.read_env(deployer.db, service.id, deployer.box)
    env_enc, env_public = services.env_snapshot(env, deployer.box)
    spec = DeploySpec.from_json(live.spec)
    target = deployer.target_of(live)
    ref, port = await undone_on_cancel(
        start_instance(deployer, live, {v.key: v.value for v in env}, None),
        lambda started: _stop_started(deployer, live, started),
    )
    try:
        problem = await instance_ready(
            target, ref, port, spec.health_check.path, spec.health_check.timeout
        )
    except BaseException:
        await run_to_end(target.abandon(ref))
        raise
    if problem is not None:
        await run_to_end(target.abandon(ref))
        raise Unavailable(
            f"The new instance of {service.name} failed its health check ({problem}); "
            "the running one keeps serving",
            details={"health": problem},
        )
    await run_to_end(
        _switch(deployer, service, live, (ref, port), (env_enc, env_public), drain=drain)
    )


async def _switch(
    deployer: Deployer,
    service: Service,
    live: Deployment,
    new: tuple[str, int | None],
    env: tuple[str, str],
    *,
    drain: bool,
) -> None:
    """Traffic to the new instance, the row says so, then the old one drains and stops."""
    ref, port = new
    old = live.instance_ref
    target = deployer.target_of(live)
    upstream = upstream_of(live, port)
    try:
        async with deployer.router.changing(point={service.id: upstream}):
            await deployments.update_deployment(
                deployer.db,
                live.id,
                {"instance_ref": ref, "host_port": port, "env_enc": env[0], "env_public": env[1]},
                None,
            )
    except BaseException:
        await target.abandon(ref)
        raise
    # On a rolling target (swarm) the old ref names the start the new one replaced in place:
    # stopping it changes nothing, and Swarm drained the old tasks already.
    if old and not target.rolling:
        if drain:
            await deployer.drain()
        try:
            await target.stop(old)
        except DployrError as err:  # the new one serves; reconcile removes this one at start
            _LOGGER.warning("could not stop the old instance of %s: %s", service.name, err)


async def _stop_started(
    deployer: Deployer, live: Deployment, started: asyncio.Future[tuple[str, int | None]]
) -> None:
    with contextlib.suppress(Exception):
        ref, _ = await started
        await deployer.target_of(live).abandon(ref)


async def delete_service(
    deployer: Deployer, service: Service, *, keep_volumes: bool = False
) -> None:
    """Stop everything of the service, remove its instances, artifacts, routes, cache, rows and
    volumes; with `keep_volumes` the volumes stay (rows without a service, storage untouched)
    for a later service of the same name (SPEC §14)."""
    await deployer.cancel_service(service.id)
    async with deployer.service_lock(service.id):
        # Its routes go first (the proxy stops sending traffic), then its instances.
        owned = await routes.routes_of_service(deployer.db, service.id)
        async with (
            deployer.router.changing(remove={r.route.id for r in owned}),
            deployer.db.transaction() as conn,
        ):
            await routes.delete_routes(conn, owned)
        history = await deployments.deployments_of(deployer.db, service.id)
        # Every target the service ever ran on (a target that cannot answer is a 503 here:
        # nothing of the service is left running that no row names).
        used = {deployer.target_of(d).name: deployer.target_of(d) for d in history}
        for target in used.values():
            for instance in await target.instances():
                if instance.service_id == service.id:
                    await target.stop(instance.ref, grace=5)
        for deployment in history:
            target = deployer.target_of(deployment)
            if target.owns(deployment.artifact, service.id):
                assert deployment.artifact is not None
                await target.remove_artifact(deployment.artifact)
        await deployer.remove_cache(service.id)
        await deployer.uploads.remove_service(service.id)
        if not keep_volumes:
            await _remove_volumes(deployer, service, used)
        # A route made meanwhile (the API does not wait for this lock) goes with the row.
        late = await routes.routes_of_service(deployer.db, service.id)
        async with (
            deployer.router.changing(remove={r.route.id for r in late}),
            deployer.db.transaction() as conn,
        ):
            await routes.delete_routes(conn, late)
            await volumes.keep(conn, service.id)  # only the kept ones are left
            await services.delete_service(conn, service.id)


async def _remove_volumes(deployer: Deployer, service: Service, used: dict[str, Target]) -> None:
    """Each volume's storage, then its row (its instances are gone: nothing mounts it), on
    its own target and every other the service ran on (one that moved made storage there
    too). A storage that cannot go (a 503) leaves its row, so the DELETE can be sent again."""
    for volume in await volumes.of_service(deployer.db, service.id):
        for target in {volume.target: deployer.targets.get(volume.target), **used}.values():
            await target.remove_volume(volume.mount)
        async with deployer.db.transaction() as conn:
            await volumes.forget(conn, [volume.id])


async def volume_usage(deployer: Deployer, service: Service) -> list[dict[str, Any]]:
    """The service's volumes, each with the bytes its storage holds (None: not made yet, or
    its target cannot say now: the list still answers while the engine is down)."""
    found = await volumes.of_service(deployer.db, service.id)
    sizes: list[int | None] = []
    for volume in found:
        try:
            sizes.append(await deployer.targets.get(volume.target).volume_size(volume.mount))
        except RuntimeFailure as err:
            _LOGGER.info("size of volume %s unknown: %s", volume.name, err.message)
            sizes.append(None)
    return [
        {"name": v.name, "path": v.path, "size_bytes": size, "created_at": v.created_at}
        for v, size in zip(found, sizes, strict=True)
    ]


def _event(service: Service, type_: str, live: Deployment) -> tuple[str, dict[str, Any]]:
    return type_, {
        "service_id": service.id,
        "service_name": service.name,
        "project_id": service.project_id,
        "deployment_id": live.id,
        "at": now_iso(),
    }
