"""A service's uploaded archives: read at fetching, reused by a new release, kept like releases."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dployr.errors import InvalidState
from dployr.sources.git import Checkout, SourceError
from dployr.sources.upload import ArchiveRefused, Contents
from dployr.store import deployments
from dployr.store.db import Transaction
from dployr.store.deployments import FINISHED, Deployment

if TYPE_CHECKING:
    from dployr.pipeline.deployer import Deployer

_LOGGER = logging.getLogger(__name__)
# Puts a new deployment's archive in place, in the transaction that records it (raising
# undoes the deployment).
Placer = Callable[[Transaction, Deployment], Awaitable[None]]


async def read_upload(
    deployer: Deployer, deployment: Deployment, work: Path
) -> tuple[Checkout, Contents]:
    """The deployment's archive as the plain source tar of its build, checked again on the way
    (the rules may have grown since it was received)."""
    stored = deployer.uploads.archive(deployment.service_id, deployment.id)
    if not await asyncio.to_thread(stored.is_file):
        raise SourceError("the uploaded archive of this deployment is gone; upload it again")
    source = work / "source.tar"
    try:
        contents = await deployer.uploads.check(stored, source)
    except ArchiveRefused as err:
        raise SourceError(f"the uploaded archive is refused: {err.reason}") from err
    return Checkout("", source), contents


async def same_upload(deployer: Deployer, original: Deployment, *, required: bool) -> Placer | None:
    """How a new release of `original` (a PUT, or a rollback) gets its archive: a link to
    `original`'s. None when `original` is no upload, or (`required` false) its archive went
    with the release retention; when `required`, that is a 409 (upload it again)."""
    if original.spec.get("source") != "upload":
        return None
    uploads = deployer.uploads
    kept = uploads.archive(original.service_id, original.id)
    if not await asyncio.to_thread(kept.is_file):
        if not required:
            return None
        raise InvalidState(
            f"The upload of release {original.number} is no longer kept "
            "(runtime.keep_releases): upload the directory again"
        )

    async def place(_: Transaction, new: Deployment) -> None:
        await uploads.reuse(kept, new.service_id, new.id)

    return place


async def prune_uploads(deployer: Deployer, service_id: str) -> None:
    """Keep the archives of the service's newest `keep_releases` deployments, of its live one
    and of any not finished; an archive whose deployment is not in the history yet (being
    recorded now) is left to the start-up sweep."""
    history = await deployments.deployments_of(deployer.db, service_id)
    keep = deployer.config.runtime.keep_releases
    for old in history[keep:]:
        if old.status in FINISHED and old.status != "live":
            await deployer.uploads.discard(deployer.uploads.archive(service_id, old.id))


async def sweep_uploads(deployer: Deployer) -> None:
    """At start: what a kill -9 left (a half-received upload, an archive whose deployment was
    never committed or was removed) goes."""
    removed = 0
    for _, deployment_id, path in await deployer.uploads.kept():
        if await deployments.get_deployment(deployer.db, deployment_id, None) is None:
            await deployer.uploads.discard(path)
            removed += 1
    if removed:
        _LOGGER.info("removed %d uploaded archives no deployment names", removed)
