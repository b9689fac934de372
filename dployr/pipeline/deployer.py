"""The deployer: queues deployments (one a service, `build_concurrency` builds at a time) and
runs each through its stages, top to bottom: fetching → building → starting → health_checking
→ switching → live. A failure or a cancel at any point leaves the live release untouched."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

from dployr.config import Config
from dployr.crypto import SecretBox
from dployr.errors import Conflict, DployrError, InvalidState
from dployr.ids import now_iso
from dployr.pipeline.attempt import Attempt
from dployr.pipeline.routing import Router
from dployr.pipeline.swarm_attempt import SwarmAttempt
from dployr.pipeline.uploads import Placer, prune_uploads
from dployr.runtime.protocol import Mount, Target
from dployr.runtime.swarm import SwarmTarget
from dployr.runtime.targets import Targets
from dployr.sources.git import GitAuth
from dployr.sources.upload import Uploads
from dployr.store import credentials, deployments, projects, services, volumes
from dployr.store.db import Database, Transaction
from dployr.store.deployments import FINISHED, Deployment, NewDeployment
from dployr.store.services import Service
from dployr.tasks import run_to_end

_LOGGER = logging.getLogger(__name__)


def redeploy(
    service: Service, spec: dict[str, Any], triggered_by: str, commit: str
) -> NewDeployment:
    """A new release of the service with `spec` (its latest), pinned to `commit` (a push or a
    poll found it)."""
    return NewDeployment(
        owner_id=service.owner_id,
        project_id=service.project_id,
        name=service.name,
        runtime=spec["runtime"],
        target=spec["target"],
        spec=spec,
        triggered_by=triggered_by,
        commit_sha=commit,
    )


@dataclass(frozen=True)
class EnvChange:
    key: str
    value: str
    secret: bool | None = None  # None: the key keeps its flag (a new key is plain)


class Deployer:
    """The one place deployments are queued, run, cancelled and stopped at shutdown."""

    def __init__(
        self,
        db: Database,
        config: Config,
        targets: Targets,
        router: Router,
        box: SecretBox,
    ) -> None:
        self.db = db
        self.config = config
        self.targets = targets
        self.router = router
        self.box = box
        self.build_slots = asyncio.Semaphore(config.runtime.build_concurrency)
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._task_service: dict[str, str] = {}  # deployment id → service id, while queued/running
        self._cancel_reasons: dict[str, str] = {}
        self.stopping = asyncio.Event()  # set at SIGTERM
        self.cache_dir = config.data_path / "cache"
        self.work_dir = config.data_path / "work"
        self.uploads = Uploads(config.data_path / "uploads", config.runtime.max_upload_bytes)
        for target in targets:
            if isinstance(target, SwarmTarget):
                target.login_source = self._registry_login

    async def _registry_login(self) -> dict[str, str]:
        """`[swarm] registry_credential_id`'s login ({} when none is set), read when needed."""
        credential_id = self.config.swarm.registry_credential_id
        if not credential_id:
            return {}
        login = await credentials.registry_login(self.db, self.box, credential_id)
        return {"username": login.username, "password": login.password}

    def service_lock(self, service_id: str) -> asyncio.Lock:
        """asyncio.Lock wakes waiters in order: deployments of a service run as they came."""
        return self._locks.setdefault(service_id, asyncio.Lock())

    async def drain(self) -> None:
        """Let an old instance finish what it serves (`drain_seconds`), cut short when the
        daemon stops: its shutdown grace is not spent waiting."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.runtime.drain_seconds):
                await self.stopping.wait()

    def cancel_reason(self, deployment_id: str) -> str | None:
        return self._cancel_reasons.get(deployment_id)

    # -- creating ---------------------------------------------------------------------------

    async def create(
        self,
        new: NewDeployment,
        env_changes: list[EnvChange],
        *,
        project_given: bool,
        place: Placer | None = None,
    ) -> Deployment:
        """Record the deployment (creating the service on a name's first deploy) and queue it.
        The env changes land in the service's list in the same transaction; `place` puts an
        uploaded archive in place before the COMMIT (a crash between leaves a file the start
        sweeps, never a deployment without its archive)."""
        async with self.db.transaction() as conn:
            created = await self._record(conn, new, env_changes, project_given=project_given)
            if place is not None:
                await place(conn, created)
        self.submit(created)
        return created

    async def queue_push(self, new: NewDeployment) -> tuple[Deployment, bool]:
        """A push hook's deployment of `new.commit_sha`, and whether it coalesced: when a
        push-hook deployment of the service is still queued, it is pointed at this newer
        commit instead of queueing another (one transaction: two hooks cannot both miss it)."""
        assert new.commit_sha is not None
        async with self.db.transaction() as conn:
            service = await services.service_by_name(conn, new.owner_id, new.name)
            if service is not None:
                repinned = await deployments.repin_queued(conn, service.id, new.commit_sha)
                if repinned is not None:
                    return repinned, True
            created = await self._record(conn, new, [], project_given=False)
        self.submit(created)
        return created, False

    async def _record(
        self,
        conn: Transaction,
        new: NewDeployment,
        env_changes: list[EnvChange],
        *,
        project_given: bool,
    ) -> Deployment:
        service = await services.service_by_name(conn, new.owner_id, new.name)
        if service is None:
            project_id = new.project_id or await projects.default_project_id(conn, new.owner_id)
            service = await deployments.create_service(
                conn,
                NewDeployment(**{**new.__dict__, "project_id": project_id}),
                self.box.encrypt(token_urlsafe(32)),
            )
        elif project_given and new.project_id != service.project_id:
            raise Conflict(
                f"Service {new.name!r} belongs to another project",
                details={"field": "project_id", "reason": "the service is in another project"},
            )
        for change in env_changes:
            await services.upsert_env(
                conn, service.id, change.key, change.value, change.secret, self.box
            )
        await volumes.attach(
            conn, new.owner_id, service.id, new.name, new.target, new.spec.get("volumes", [])
        )
        env = await services.read_env(conn, service.id, self.box)
        return await deployments.insert_deployment(
            conn, new, service, services.env_snapshot(env, self.box)
        )

    def submit(self, deployment: Deployment) -> None:
        task = asyncio.create_task(
            self._run(deployment.id, deployment.service_id), name=f"deploy {deployment.id}"
        )
        self._tasks[deployment.id] = task
        self._task_service[deployment.id] = deployment.service_id

    async def _run(self, deployment_id: str, service_id: str) -> None:
        try:
            async with self.service_lock(service_id):
                deployment = await deployments.get_deployment(self.db, deployment_id, None)
                if deployment is None or deployment.status != "queued":
                    return
                if self._cancel_reasons.get(deployment_id) == "cancelled":
                    return  # cancelled before it had a task, its end still being written
                await self._attempt(deployment).run()
                await prune_uploads(self, service_id)
        except asyncio.CancelledError:
            # Cancelled before it reached the front of its service's queue.
            current = await run_to_end(deployments.get_deployment(self.db, deployment_id, None))
            if current is not None and current.status == "queued":
                await run_to_end(self._end_queued(current))
        except Exception:
            _LOGGER.exception("deployment %s crashed the deployer", deployment_id)
        finally:
            self._tasks.pop(deployment_id, None)
            self._task_service.pop(deployment_id, None)
            self._cancel_reasons.pop(deployment_id, None)

    async def _end_queued(self, deployment: Deployment) -> None:
        reason = self._cancel_reasons.get(deployment.id)
        if reason == "shutdown":
            return  # stays queued: it is accepted work, resumed at the next start
        await deployments.update_deployment(
            self.db,
            deployment.id,
            {"status": "cancelled", "finished_at": now_iso()},
            ("deployment.cancelled", "cancelled while queued", None),
        )

    # -- cancelling and stopping ----------------------------------------------------------------

    async def cancel(self, deployment: Deployment) -> None:
        """Cancel a queued or running deployment (its half-made instance and image go too)."""
        task = self._tasks.get(deployment.id)
        if deployment.status == "queued" and task is None:
            # Not resumed yet (the engine has not answered since the start): no task to stop.
            self._cancel_reasons[deployment.id] = "cancelled"  # a resume meanwhile stops
            try:
                await self._end_queued(deployment)
            finally:
                self._cancel_reasons.pop(deployment.id, None)
            return
        if deployment.status in FINISHED or task is None:
            raise InvalidState(
                f"Deployment {deployment.id} is {deployment.status}: nothing to cancel"
            )
        self._cancel_reasons[deployment.id] = "cancelled"
        task.cancel()
        await asyncio.wait({task})
        ended = await deployments.get_deployment(self.db, deployment.id, None)
        if ended is not None and ended.status == "live":
            raise InvalidState(
                f"Deployment {deployment.id} went live before the cancel reached it; "
                "deploy or roll back to another release instead"
            )

    async def cancel_service(self, service_id: str) -> None:
        """Cancel every queued or running deployment of a service (before deleting it)."""
        doomed = []
        for deployment_id, owner in list(self._task_service.items()):
            if owner == service_id:
                self._cancel_reasons[deployment_id] = "cancelled"
                doomed.append(self._tasks[deployment_id])
                doomed[-1].cancel()
        if doomed:
            await asyncio.wait(doomed)

    async def shutdown(self, grace: float) -> None:
        """SIGTERM: running deployments fail as interrupted (cleaned up); queued ones stay
        queued and resume at the next start."""
        self.stopping.set()
        tasks = list(self._tasks.items())
        for deployment_id, task in tasks:
            self._cancel_reasons[deployment_id] = "shutdown"
            task.cancel()
        if tasks:
            await asyncio.wait([t for _, t in tasks], timeout=grace)
        self.uploads.close()

    def is_tracked(self, deployment_id: str) -> bool:
        """Queued or running in this process (it has a task)."""
        return deployment_id in self._tasks

    def running_count(self) -> int:
        return len(self._tasks)

    # -- files ------------------------------------------------------------------------------------

    def repo_cache(self, service_id: str) -> Path:
        return self.cache_dir / service_id / "repo.git"

    async def remove_cache(self, service_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.cache_dir / service_id, True)

    # -- what deployments are made of -------------------------------------------------------

    async def credential(self, owner_id: str, credential_id: str | None) -> tuple[str, str] | None:
        """(type, secret) of the owner's credential a deployment names; None when it names none."""
        if not credential_id:
            return None
        credential = await credentials.get_credential(self.db, credential_id, owner_id)
        if credential is None:
            raise DployrError(f"credential {credential_id} no longer exists")
        return credential.type, self.box.decrypt(credential.secret_enc)

    async def git_auth(self, owner_id: str, credential_id: str | None) -> GitAuth | None:
        found = await self.credential(owner_id, credential_id)
        if found is None:
            return None
        kind, secret = found
        return GitAuth(token=secret) if kind == "token" else GitAuth(deploy_key=secret)

    # -- targets ----------------------------------------------------------------------------------

    async def mounts(self, deployment: Deployment) -> tuple[Mount, ...]:
        """The storage of the volumes a release names (SPEC §14)."""
        return await volumes.mounts(
            self.db, deployment.service_id, deployment.spec.get("volumes", [])
        )

    def _attempt(self, deployment: Deployment) -> Attempt:
        if self.target_of(deployment).rolling:
            return SwarmAttempt(self, deployment)
        return Attempt(self, deployment)

    def target_of(self, deployment: Deployment) -> Target:
        """The target a deployment runs on (its spec's: a service may move between targets,
        and each release stays with the one that built it)."""
        return self.targets.get(deployment.spec["target"])
