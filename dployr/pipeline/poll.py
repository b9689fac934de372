"""auto_deploy "poll" (SPEC §13): a scheduled `ls-remote`; a new head of a polled service's
branch queues a deployment of exactly that commit (`triggered_by: "poll"`)."""

from __future__ import annotations

import logging

from dployr.errors import DployrError
from dployr.pipeline.deployer import Deployer, redeploy
from dployr.sources.remote_head import remote_head
from dployr.sources.validate import parse_remote
from dployr.store import deployments, services
from dployr.store.deployments import Deployment
from dployr.store.services import Service

_LOGGER = logging.getLogger(__name__)
LS_REMOTE_TIMEOUT = 60.0


async def poll_services(deployer: Deployer) -> list[Deployment]:
    """One round over every polled service, one at a time (a slow remote delays the others,
    never the loop); a remote that cannot be read is logged and tried at the next round."""
    queued = []
    for service in await services.polled_services(deployer.db):
        if deployer.stopping.is_set():
            break
        try:
            deployment = await poll_service(deployer, service)
        except DployrError as err:
            _LOGGER.warning("polling service %s: %s", service.name, err.message)
            continue
        if deployment is not None:
            queued.append(deployment)
    return queued


async def poll_service(deployer: Deployer, service: Service) -> Deployment | None:
    """Queue a deployment of the branch's head when it is a commit no deployment of the
    service has had yet. Nothing while one is queued or running (its result comes first);
    a head whose deployment failed is not tried again (a push makes a new head)."""
    db = deployer.db
    latest = await deployments.latest_deployment(db, service.id)
    if latest is None or latest.spec["source"] != "remote":
        return None
    if await deployments.has_unfinished(db, service.id):
        return None
    spec = latest.spec
    branch = spec.get("branch") or "main"
    head = await remote_head(
        deployer.repo_cache(service.id),
        parse_remote(spec["remote"]),
        branch,
        await deployer.git_auth(service.owner_id, spec.get("credential_id")),
        deployer.work_dir / f"poll-{service.id}",
        allow_private=deployer.config.runtime.allow_private_remotes,
        limit=min(LS_REMOTE_TIMEOUT, deployer.config.runtime.build_timeout),
    )
    if head is None or head == await deployments.last_commit(db, service.id):
        return None
    _LOGGER.info("service %s: %s is at %s, deploying it", service.name, branch, head)
    return await deployer.create(redeploy(service, spec, "poll", head), [], project_given=False)
