"""Running a release's instance again (restart, start, reconcile), and the two moves of the
stop-first strategy (SPEC §14): take the live instance down before its successor starts, and
bring it back when the successor does not go live."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dployr.errors import DployrError
from dployr.pipeline.health import instance_ready
from dployr.pipeline.spec import DeploySpec, instance_spec
from dployr.runtime.protocol import InstanceSpec
from dployr.store import deployments, services
from dployr.store.deployments import Deployment
from dployr.tasks import run_to_end

if TYPE_CHECKING:
    from dployr.pipeline.deployer import Deployer

_LOGGER = logging.getLogger(__name__)
STOP_FIRST = "stop-first"


async def start_instance(
    deployer: Deployer, deployment: Deployment, env: dict[str, str], host_port: int | None
) -> tuple[str, int | None]:
    """Run a release's artifact again (restart, start, reconcile); a taken port → a fresh one.
    The port is None for a worker, which publishes none."""
    target = deployer.target_of(deployment)
    service = await services.get_service(deployer.db, deployment.service_id, None)
    scale = service.replicas if service is not None else None  # swarm: `scale` wins
    mounts = await deployer.mounts(deployment)
    wanted = instance_spec(deployment, env, host_port, mounts, scale)
    try:
        instance = await target.start(wanted)
    except Exception:
        if host_port is None:
            raise
        _LOGGER.warning("port %s is taken; %s gets a fresh one", host_port, deployment.id)
        instance = await target.start(InstanceSpec(**{**wanted.__dict__, "host_port": None}))
    return instance.ref, instance.host_port


def stops_first(deployment: Deployment) -> bool:
    return DeploySpec.from_json(deployment.spec).strategy == STOP_FIRST


async def take_down(deployer: Deployer, live: Deployment) -> None:
    """stop-first: the proxy answers 503 for the service (not a dead upstream's 502), then the
    live instance stops and its row says so; the release stays the live one. Run to its end:
    a cancel meanwhile leaves neither a stopped instance the proxy points at nor a row naming
    one that is gone. Should the target refuse to stop it, the proxy is pointed back."""
    assert live.instance_ref is not None
    target = deployer.target_of(live)
    ref = live.instance_ref

    async def stop() -> None:
        async with deployer.router.changing(point={live.service_id: []}):
            await target.stop(ref)
            await deployments.update_deployment(deployer.db, live.id, {"instance_ref": None}, None)

    await run_to_end(stop())


async def is_down(deployer: Deployer, live: Deployment) -> bool:
    """Whether take_down stopped it (its row names no instance): after a failure or a cancel
    that landed during take_down, what to bring back."""
    row = await deployments.get_deployment(deployer.db, live.id, None)
    return row is not None and row.instance_ref is None


async def bring_back(deployer: Deployer, live: Deployment) -> str:
    """stop-first, after the new instance failed or was cancelled: the live release runs again
    with the env it ran with, the proxy sends its traffic back once it answers. Returns what
    happened, for a log; a start that fails leaves the row without an instance, so reconcile
    tries again at the next start (the service still wants to run)."""
    env, _ = services.open_snapshot(live.env_enc, deployer.box)
    try:
        ref, port = await start_instance(deployer, live, env, live.host_port)
    except DployrError as err:
        _LOGGER.error("could not start release %s of %s again: %s", live.number, live.id, err)
        return f"could not start release {live.number} again: {err.message}"
    check = DeploySpec.from_json(live.spec).health_check
    problem = await instance_ready(deployer.target_of(live), ref, port, check.path, check.timeout)
    # The row first: the instance runs, so the row names it whatever the proxy says (the
    # table is what the proxy is given at each change, and at the next start).
    await deployments.update_deployment(
        deployer.db, live.id, {"instance_ref": ref, "host_port": port}, None
    )
    try:
        await deployer.router.sync()
    except DployrError as err:
        _LOGGER.error("the proxy did not take release %s back: %s", live.number, err.message)
        return f"release {live.number} runs again, but the proxy refused it: {err.message}"
    where = "as a worker" if port is None else f"on 127.0.0.1:{port}"
    said = f" (its health check: {problem})" if problem else ""
    return f"release {live.number} runs again {where} and takes the traffic{said}"
