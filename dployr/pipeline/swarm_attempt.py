"""A deployment on the swarm target (SPEC §15): the same stages, but `starting` updates the
service's Swarm service in place and `health_checking` watches Swarm replace its tasks one at
a time, each checked inside the swarm, until all run the new release or Swarm rolls back."""

from __future__ import annotations

import asyncio
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from dployr.pipeline.attempt import Attempt, StageFailed
from dployr.pipeline.spec import instance_spec, upstream_of
from dployr.runtime.protocol import BuildRequest
from dployr.runtime.swarm import SwarmTarget, make_ref, new_start_id
from dployr.sources.git import Checkout
from dployr.store import services
from dployr.tasks import run_to_end

if TYPE_CHECKING:
    from dployr.pipeline.deployer import Deployer
    from dployr.store.deployments import Deployment


class SwarmAttempt(Attempt):
    def __init__(self, deployer: Deployer, deployment: Deployment) -> None:
        super().__init__(deployer, deployment)
        assert isinstance(self.target, SwarmTarget)
        self.swarm: SwarmTarget = self.target
        self.replicas = 1

    async def stopping_previous(self) -> None:
        """Swarm orders the update itself (`stop-first` goes into its UpdateConfig)."""

    async def _login(self) -> None:
        """`[swarm] registry_credential_id`: the login of pushes and of every node's pull,
        read at each deployment (the credential may be made or changed after the start)."""
        login = await self.swarm.login()  # {} without one; a missing credential fails here
        if login:
            self.log.add_secret(login["password"])

    async def building(self, checkout: Checkout | None) -> None:
        """An image source is built on too: the release's image carries the busybox its
        task health check runs (`FROM <image>` plus one layer)."""
        await self._login()
        if self.deployment.rollback_of or self.spec.source != "image":
            await super().building(checkout)
            return
        assert self.spec.image is not None
        if not await self.target.has_artifact(self.spec.image):
            raise StageFailed(f"image {self.spec.image} is not on this host; load or pull it first")
        deployment = self.deployment
        name = self.target.artifact_name(deployment.service_id, deployment.number)
        await self.enter("building", f"adding the task health check to {self.spec.image}")
        source = self.work / "empty.tar"
        await asyncio.to_thread(_empty_tar, source)
        request = BuildRequest(
            deployment.service_id,
            deployment.service_name,
            deployment.id,
            deployment.number,
            "image",
            None,
            None,
            None,
            source,
            float(self.d.config.runtime.build_timeout),
            image=self.spec.image,
        )
        async with self.d.build_slots:
            self.built = name
            built = await self.target.build(request, _Quiet(self))
        self.finish("building", message=f"built {built}")
        await self._update({"artifact": built}, None)

    async def starting(self) -> int | None:
        artifact = self.deployment.artifact
        assert artifact is not None
        service = await services.get_service(self.d.db, self.deployment.service_id, None)
        scale = service.replicas if service is not None else None  # `scale`'s, or a release's
        if self.deployment.rollback_of:  # an old release with the service's scale of now
            self.replicas = scale or self.spec.replicas or 1
        else:
            self.replicas = self.spec.replicas or scale or 1
        tasks = f"{self.replicas} task{'s' if self.replicas != 1 else ''}"
        await self.enter("starting", f"updating the swarm service to {artifact} ({tasks})")
        mounts = await self.d.mounts(self.deployment)
        wanted = instance_spec(self.deployment, self.env, None, mounts, self.replicas)
        wanted = replace(wanted, start_id=new_start_id())
        # The ref is known, and recorded, before the engine takes the update: a cancel or a
        # crash from here on undoes it (abandon), whether or not the engine took it. A cancel
        # during the call waits for its answer, so the undo never runs before the update.
        self.instance_ref = make_ref(
            self.deployment.service_id, self.deployment.id, wanted.start_id
        )
        await self._update({"host_port": None, "instance_ref": self.instance_ref}, None)
        await run_to_end(self.target.start(wanted))
        self.finish("starting", message=f"Swarm is rolling out {tasks}, one at a time")
        return None

    async def health_checking(self, host_port: int | None) -> None:
        check = self.spec.health_check
        ref = self.instance_ref
        assert ref is not None
        if self.spec.port is None:
            what = "each task to stay up"
        elif check.path:
            what = f"each task to answer GET {check.path} inside the swarm"
        else:
            what = "each task to take a TCP connection inside the swarm"
        await self.enter("health_checking", f"waiting for {what} ({self.replicas} in all)")
        problem = await self.swarm.rollout(ref, check.timeout)
        if problem is not None:
            await self._app_output(ref)
            raise StageFailed(f"the swarm update failed: {problem}")
        tasks = f"{self.replicas} task{'s' if self.replicas != 1 else ''}"
        self.finish("health_checking", message=f"{tasks} passed the check inside the swarm")

    async def switching(self, host_port: int | None) -> None:
        upstream = upstream_of(self.deployment, None)
        if upstream:
            await self.enter("switching", f"sending traffic to {upstream[0]}")
        else:
            await self.enter("switching", "a worker: no traffic to send")
        # A new owner's overlay joins the running swarm proxy before the switch, not at it.
        await self.d.router.prepare_swarm(self.deployment.owner_id)
        await run_to_end(self._go_live_and_retire(None))
        if self.spec.replicas is not None and not self.deployment.rollback_of:
            # the service's scale from now on (SPEC §15); a rollback keeps the scale of now
            await services.set_replicas(self.d.db, self.deployment.service_id, self.replicas)


class _Quiet:
    """Build output of the one-layer image build: into the deployment's log."""

    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt

    def line(self, text: str) -> None:
        self._attempt.log.write(text)

    def step(self, done: int, total: int, what: str) -> None:
        return None


def _empty_tar(path: Path) -> None:
    with tarfile.open(path, "w"):
        pass
