"""Reconcile at start (SPEC §9): what a crash left mid-flight ends `failed` and is cleaned up,
queued deployments resume, running services run, stopped ones stay stopped, and no instance of
ours is left that no service owns. Each target is reconciled once it answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from dployr.crypto import SecretUndecryptable
from dployr.errors import DployrError
from dployr.ids import now_iso
from dployr.pipeline.deployer import Deployer
from dployr.pipeline.instances import start_instance
from dployr.runtime.protocol import RuntimeFailure, Target
from dployr.store import deployments, services
from dployr.store.deployments import RUNNING, Deployment

_LOGGER = logging.getLogger(__name__)
ENGINE_POLL_SECONDS = 2.0


async def reconcile_when_ready(deployer: Deployer, target: Target) -> None:
    """For a target that was down at start (an engine that starts later): reconcile its releases
    as soon as it answers, so its queued deployments resume then, not at the next restart."""
    while True:
        if await target.problem() is None:
            break
        await asyncio.sleep(ENGINE_POLL_SECONDS)  # polling: the engine sends no signal
    _LOGGER.info("the %s target answers now: reconciling its releases", target.name)
    await reconcile(deployer, {target.name})


async def reconcile(deployer: Deployer, targets: Collection[str]) -> None:
    """Reconcile the releases of `targets` (those that answer now); the proxy in any case."""
    for step in (_fail_interrupted, _converge_services, _remove_orphans):
        try:
            await step(deployer, targets)
        except RuntimeFailure as err:
            _LOGGER.warning("reconcile could not reach a target: %s", err)
    await sync_proxy(deployer)
    for queued in await deployments.deployments_in(deployer.db, ("queued",)):
        if deployer.target_of(queued).name not in targets:
            continue  # it waits for its target (reconcile_when_ready)
        if not deployer.is_tracked(queued.id):  # one made after the start is queued already
            _LOGGER.info("resuming queued deployment %s", queued.id)
            deployer.submit(queued)


async def sync_proxy(deployer: Deployer) -> None:
    """Render the proxy config from the route table (at start: it may be a fresh proxy, or
    live ports may have changed). A proxy that refuses is logged; the daemon still starts."""
    try:
        await deployer.router.sync()
    except DployrError as err:
        _LOGGER.error("the proxy did not take the route table: %s", err.message)
    else:
        _LOGGER.info("proxy (%s) serves the route table", deployer.router.proxy.name)


async def _fail_interrupted(deployer: Deployer, targets: Collection[str]) -> None:
    for deployment in await deployments.deployments_in(deployer.db, RUNNING):
        if deployer.is_tracked(deployment.id):  # running in this process: not interrupted
            continue
        target = deployer.target_of(deployment)
        if target.name not in targets:
            continue
        message = f"interrupted: the daemon stopped during {deployment.status}"
        stages = [
            {**s, "status": "failed", "finished_at": now_iso(), "message": message}
            if s["status"] == "running" else s
            for s in deployment.stages
        ]  # fmt: skip
        if deployment.instance_ref:
            await target.abandon(deployment.instance_ref)
        built = target.artifact_name(deployment.service_id, deployment.number)
        if deployment.artifact == built or (deployment.status == "building"):
            await target.remove_artifact(built)
        await deployments.update_deployment(
            deployer.db,
            deployment.id,
            {
                "status": "failed",
                "error": message,
                "stages": stages,
                "instance_ref": None,
                "finished_at": now_iso(),
            },
            ("deployment.failed", message, deployment.status),
        )
        _LOGGER.warning("deployment %s: %s", deployment.id, message)


async def _converge_services(deployer: Deployer, targets: Collection[str]) -> None:
    for service in await services.all_services(deployer.db):
        # Under the service's lock: a late reconcile runs beside requests (start, stop).
        async with deployer.service_lock(service.id):
            await _converge(deployer, service.id, targets)


async def _converge(deployer: Deployer, service_id: str, targets: Collection[str]) -> None:
    service = await services.get_service(deployer.db, service_id, None)
    if service is None or not service.current_deployment_id:
        return
    live = await deployments.get_deployment(deployer.db, service.current_deployment_id, None)
    if live is None or not live.artifact:
        return
    target = deployer.target_of(live)
    if target.name not in targets:
        return
    status = await target.status(live.instance_ref)
    if service.desired_state == "stopped":
        # Whatever its status: a stop cut short after the instance stopped leaves the row (and
        # a systemd unit enabled, which a reboot would start) naming it.
        if live.instance_ref:
            await target.stop(live.instance_ref)
            await deployments.update_deployment(deployer.db, live.id, {"instance_ref": None}, None)
        return
    if status.status in ("running", "starting"):
        return
    if live.instance_ref and status.status != "unknown":
        await target.stop(live.instance_ref)
    try:
        env, _ = services.open_snapshot(live.env_enc, deployer.box)
    except SecretUndecryptable as err:
        # A database without its key: this service stays down and says why; the daemon starts.
        _LOGGER.error("could not bring %s back: %s", service.name, err.message)
        return
    try:
        ref, port = await start_instance(deployer, live, env, live.host_port)
    except RuntimeFailure as err:
        _LOGGER.error("could not bring %s back: %s", service.name, err)
        return
    await deployments.update_deployment(
        deployer.db, live.id, {"instance_ref": ref, "host_port": port}, None
    )
    where = "as a worker" if port is None else f"on 127.0.0.1:{port}"
    _LOGGER.info("brought %s back %s", service.name, where)


async def _remove_orphans(deployer: Deployer, targets: Collection[str]) -> None:
    keep = set()
    lives = {}
    for service in await services.all_services(deployer.db):
        if service.current_deployment_id:
            live = await deployments.get_deployment(
                deployer.db, service.current_deployment_id, None
            )
            if live is not None and live.instance_ref:
                keep.add(live.instance_ref)
                lives[service.id] = live
    for target in deployer.targets:
        if target.name not in targets:
            continue
        for instance in await target.instances():
            # A deployment running in this process owns its instance (a late reconcile).
            if instance.ref in keep or deployer.is_tracked(instance.deployment_id):
                continue
            live = lives.get(instance.service_id)
            if target.rolling and live is not None and deployer.target_of(live) is target:
                # A swarm service whose spec is not its live start's (a crash between the
                # engine taking an update and its row): the live release is put back in place.
                await _put_back(deployer, live)
            else:
                _LOGGER.info(
                    "removing orphan %s instance %s (%s)",
                    target.name,
                    instance.ref[:12],
                    instance.deployment_id,
                )
                await target.stop(instance.ref, grace=5)


async def _put_back(deployer: Deployer, live: Deployment) -> None:
    """Run the live release's spec on its rolling target again (Swarm updates in place)."""
    try:
        env, _ = services.open_snapshot(live.env_enc, deployer.box)
        ref, port = await start_instance(deployer, live, env, None)
    except (RuntimeFailure, SecretUndecryptable) as err:
        _LOGGER.error("could not put release %s back: %s", live.id, err)
        return
    await deployments.update_deployment(
        deployer.db, live.id, {"instance_ref": ref, "host_port": port}, None
    )
    _LOGGER.info("put release %s of %s back in place", live.number, live.service_name)
