"""A service's built releases: which artifacts are kept for rollback, and which can go."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dployr.store import deployments
from dployr.store.deployments import FINISHED, Deployment

if TYPE_CHECKING:
    from dployr.pipeline.deployer import Deployer

RELEASED = ("live", "superseded", "rolled_back")


async def prune_artifacts(deployer: Deployer, service_id: str) -> None:
    """Keep the artifacts of the newest `keep_releases` releases for rollback, and every one
    a deployment still uses: the live release (running or stopped), and a queued or running
    rollback's."""
    keep = deployer.config.runtime.keep_releases
    history = await deployments.deployments_of(deployer.db, service_id)
    with_images = [d for d in history if _built(deployer, d) and d.status in RELEASED]
    kept = {d.artifact for d in with_images[:keep]} | {
        d.artifact for d in history if d.status == "live" or d.status not in FINISHED
    }
    for old in with_images[keep:]:
        if old.artifact not in kept:
            assert old.artifact is not None
            await deployer.target_of(old).remove_artifact(old.artifact)


async def forget_deployment(deployer: Deployer, deployment: Deployment) -> None:
    """Remove a finished deployment from the history. Its image goes with it unless another
    deployment of the service still names it (a rollback reuses its release's image, so the
    live release or a stopped service's current one may run it). The image goes first: a
    crash in between leaves a row whose image is gone (a rollback to it is a clear 409, a
    second DELETE finishes), never an image that no row names and no prune would find."""
    artifact = deployment.artifact
    if (
        artifact is not None
        and _built(deployer, deployment)
        and not await deployments.artifact_in_use(
            deployer.db, deployment.service_id, artifact, besides=deployment.id
        )
    ):
        await deployer.target_of(deployment).remove_artifact(artifact)
    await deployments.delete_deployment(deployer.db, deployment.id)
    await deployer.uploads.discard(deployer.uploads.archive(deployment.service_id, deployment.id))


def _built(deployer: Deployer, deployment: Deployment) -> bool:
    """Whether the deployment's artifact is one its target built (not an image the user named)."""
    return deployer.target_of(deployment).owns(deployment.artifact, deployment.service_id)
