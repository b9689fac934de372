"""One deployment's run through the stages. Every transition is a row update and an event."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dployr.errors import DployrError
from dployr.ids import now_iso
from dployr.pipeline import releases
from dployr.pipeline.health import WORKER_SETTLE, still_fresh, wait_healthy, wait_settled
from dployr.pipeline.instances import STOP_FIRST, bring_back, is_down, take_down
from dployr.pipeline.logbook import Logbook
from dployr.pipeline.progress import BuildProgress
from dployr.pipeline.spec import DeploySpec, instance_spec, protected_dirs, upstream_of
from dployr.pipeline.uploads import read_upload
from dployr.proxy.domains import default_tls
from dployr.proxy.protocol import Route
from dployr.runtime.protocol import BuildRequest
from dployr.sources.git import Checkout, fetch_local, fetch_remote
from dployr.sources.validate import outside_protected, parse_remote
from dployr.store import deployments, routes, services
from dployr.store.deployments import Deployment
from dployr.tasks import run_to_end

if TYPE_CHECKING:
    from dployr.pipeline.deployer import Deployer

_LOGGER = logging.getLogger(__name__)
# Where each stage starts on the 0-100 progress scale; building takes the widest band.
PROGRESS = {"fetching": 5, "building": 20, "starting": 75, "health_checking": 85, "switching": 95}


class StageFailed(Exception):
    """A stage failed for a reason the user can act on; the message goes to `error`."""


class Attempt:
    def __init__(self, deployer: Deployer, deployment: Deployment) -> None:
        self.d = deployer
        self.deployment = deployment
        self.spec = DeploySpec.from_json(deployment.spec)
        self.stages = [dict(s) for s in deployment.stages]
        self.stage: str | None = None
        self.target = deployer.target_of(deployment)
        self.instance_ref: str | None = None
        self.built: str | None = None  # an artifact this attempt made (removed if it fails)
        self.stopped: Deployment | None = None  # stop-first: the live release it took down
        self.work = deployer.work_dir / deployment.id
        self.env, self.secrets = services.open_snapshot(deployment.env_enc, deployer.box)
        self.log: Logbook  # set in run(), once the secrets to mask are known

    # -- bookkeeping -----------------------------------------------------------------------------

    async def _update(
        self, changes: dict[str, Any], event: tuple[str, str, str | None] | None
    ) -> Deployment:
        if event is not None:
            event = (event[0], self.log.mask(event[1]), event[2])
        self.deployment = await deployments.update_deployment(
            self.d.db, self.deployment.id, changes, event
        )
        return self.deployment

    def _stage_entry(self, name: str) -> dict[str, Any]:
        return next(s for s in self.stages if s["name"] == name)

    async def enter(self, name: str, message: str, progress: int | None = None) -> None:
        self.stage = name
        entry = self._stage_entry(name)
        entry.update(status="running", started_at=now_iso(), message=message)
        self.log.write(f"==> {name}: {message}")
        await self._update(
            {
                "status": name,
                "progress": PROGRESS[name] if progress is None else progress,
                "stages": self.stages,
            },
            ("deployment.progress", message, name),
        )

    def finish(self, name: str, status: str = "succeeded", message: str | None = None) -> None:
        entry = self._stage_entry(name)
        entry.update(status=status, finished_at=now_iso())
        if message is not None:
            entry["message"] = self.log.mask(message)

    def skip(self, name: str, why: str) -> None:
        self._stage_entry(name).update(status="skipped", message=why)
        self.log.write(f"==> {name}: skipped ({why})")

    # -- the run -----------------------------------------------------------------------------------

    async def run(self) -> None:
        secrets = list(self.secrets) + await self._credential_secrets()
        start_seq = await deployments.last_log_seq(self.d.db, self.deployment.id)
        self.log = Logbook(self.d.db, self.deployment.id, secrets, start_seq)
        async with self.log:
            await self._update({"started_at": now_iso()}, None)
            try:
                await self._stages()
            except asyncio.CancelledError:
                reason = self.d.cancel_reason(self.deployment.id)
                await run_to_end(self._end_cancelled(reason))
                raise
            except (StageFailed, DployrError) as err:
                await run_to_end(self._end_failed(str(err)))
            except Exception as err:
                _LOGGER.exception("deployment %s failed unexpectedly", self.deployment.id)
                await run_to_end(self._end_failed(f"internal error ({type(err).__name__})"))
            finally:
                await run_to_end(asyncio.to_thread(shutil.rmtree, self.work, True))

    async def _stages(self) -> None:
        await asyncio.to_thread(self.work.mkdir, parents=True, exist_ok=True)
        checkout = await self.fetching()
        await self.building(checkout)
        await self.stopping_previous()
        host_port = await self.starting()
        await self.health_checking(host_port)
        await self.switching(host_port)

    async def fetching(self) -> Checkout | None:
        spec = self.spec
        if self.deployment.rollback_of or spec.source == "image":
            self.skip(
                "fetching",
                "a rollback reuses its release's image"
                if self.deployment.rollback_of
                else "source is an image",
            )
            return None
        if spec.source == "upload":
            return await self._read_upload()
        loop = asyncio.get_running_loop()

        def on_line(line: str) -> None:  # called from git's worker thread
            loop.call_soon_threadsafe(self.log.write, line)

        cache = self.d.repo_cache(self.deployment.service_id)
        timeout = self.d.config.runtime.build_timeout
        if spec.source == "remote":
            assert spec.remote is not None
            branch = spec.branch or "main"
            await self.enter("fetching", f"fetching {branch} from {spec.remote}")
            checkout = await fetch_remote(
                cache,
                parse_remote(spec.remote),
                branch,
                await self.d.git_auth(self.deployment.owner_id, spec.credential_id),
                self.work,
                allow_private=self.d.config.runtime.allow_private_remotes,
                limit=timeout,
                on_line=on_line,
                commit=self._pinned_commit(),
            )
        else:
            assert spec.path is not None
            await self.enter("fetching", f"reading {spec.path}")
            # Again now: the path, or a link on it, may have changed since the request.
            # The resolved path is what is read: a link changed after this check changes nothing.
            path = await outside_protected(Path(spec.path), protected_dirs(self.d.config))
            checkout = await fetch_local(
                cache,
                path,
                spec.branch,
                self.work,
                limit=timeout,
                on_line=on_line,
                commit=self._pinned_commit(),
            )
        message = f"at commit {checkout.commit_sha[:12]}" if checkout.commit_sha else "fetched"
        self.finish("fetching", message=message)
        await self._update({"commit_sha": checkout.commit_sha or None}, None)
        return checkout

    async def _read_upload(self) -> Checkout:
        await self.enter("fetching", "reading the uploaded archive")
        checkout, contents = await read_upload(self.d, self.deployment, self.work)
        files = f"{contents.files} file{'s' if contents.files != 1 else ''}"
        self.finish("fetching", message=f"read {files}, {contents.size} bytes")
        await self._update({"stages": self.stages}, None)
        return checkout

    def _pinned_commit(self) -> str | None:
        """The commit a push hook (or a poll) asked for, read from the row `enter("fetching")`
        returned: a newer push coalesced into this queued deployment until that moment is the
        one built (store.deployments.repin_queued changes only a row still queued)."""
        if self.deployment.triggered_by not in ("webhook", "poll"):
            return None
        if not self.deployment.commit_sha:
            return None
        self.log.write(
            f"building the {self.deployment.triggered_by}'s commit {self.deployment.commit_sha}"
        )
        return self.deployment.commit_sha

    async def building(self, checkout: Checkout | None) -> None:
        target = self.target
        if self.deployment.rollback_of:
            artifact = self.deployment.artifact
            if not artifact or not await target.has_artifact(artifact):
                raise StageFailed(f"the release's artifact ({artifact}) is no longer on this host")
            self.skip("building", f"reusing {artifact}")
            return
        if checkout is None:  # an image source
            assert self.spec.image is not None
            if not await target.has_artifact(self.spec.image):
                raise StageFailed(
                    f"image {self.spec.image} is not on this host; load or pull it first"
                )
            self.skip("building", "source is an image")
            await self._update({"artifact": self.spec.image}, None)
            return
        deployment = self.deployment
        name = target.artifact_name(deployment.service_id, deployment.number)
        await self.enter("building", f"building {name} ({target.name})")
        request = BuildRequest(
            deployment.service_id,
            deployment.service_name,
            deployment.id,
            deployment.number,
            self.spec.runtime,
            self.spec.version,
            self.spec.build_cmd,
            self.spec.run_cmd,
            checkout.archive,
            float(self.d.config.runtime.build_timeout),
        )
        reporter = BuildProgress(self)
        async with self.d.build_slots:
            self.built = name
            try:
                built = await target.build(request, reporter)
            finally:
                await reporter.close()
        self.finish("building", message=f"built {built}")
        await self._update({"artifact": built}, None)

    async def stopping_previous(self) -> None:
        """stop-first (SPEC §14): the live instance stops before this one starts, for an app
        whose instances cannot share their data. Until this release is live the proxy answers
        503; should it fail or be cancelled, the live release runs again (endings below)."""
        if self.spec.strategy != STOP_FIRST:
            return
        service = await services.get_service(self.d.db, self.deployment.service_id, None)
        if service is None or not service.current_deployment_id:
            return
        previous = await deployments.get_deployment(self.d.db, service.current_deployment_id, None)
        if previous is None or not previous.instance_ref:
            return
        self.log.write(
            f"stop-first: stopping release {previous.number} before release "
            f"{self.deployment.number} starts (the proxy answers 503 until it is live)"
        )
        try:
            await take_down(self.d, previous)
        finally:  # a cancel that landed meanwhile too: what is down comes back at the end
            if await run_to_end(is_down(self.d, previous)):
                self.stopped = previous

    async def starting(self) -> int | None:
        """Start the new instance; its loopback port, or None for a worker (no port)."""
        artifact = self.deployment.artifact
        assert artifact is not None
        await self.enter("starting", f"starting {artifact}")
        mounts = await self.d.mounts(self.deployment)
        instance = await self.target.start(instance_spec(self.deployment, self.env, None, mounts))
        self.instance_ref = instance.ref
        if self.spec.port is None:
            self.finish("starting", message="started (a worker: no port)")
        else:
            assert instance.host_port is not None
            self.finish("starting", message=f"listening on 127.0.0.1:{instance.host_port}")
        await self._update({"host_port": instance.host_port, "instance_ref": instance.ref}, None)
        return instance.host_port

    async def health_checking(self, host_port: int | None) -> None:
        check = self.spec.health_check
        ref = self.instance_ref
        assert ref is not None
        if host_port is None:
            await self._settle_worker(ref, min(WORKER_SETTLE, check.timeout))
            return
        what = f"GET {check.path}" if check.path else "a TCP connection the app holds open"
        await self.enter("health_checking", f"waiting up to {check.timeout} s for {what}")

        problem = await wait_healthy(
            host_port, check.path, check.timeout, still_fresh(self.target, ref)
        )
        if problem is not None:
            await self._app_output(ref)
            raise StageFailed(f"health check failed: {problem}")
        self.finish("health_checking", message=f"{what} answered")

    async def _settle_worker(self, ref: str, settle: float) -> None:
        """A worker has no port to ask: it is healthy once it has stayed up (SPEC §13)."""
        await self.enter("health_checking", f"a worker: waiting {settle:g} s for it to stay up")
        how = await wait_settled(settle, lambda: self.target.status(ref))
        if how is not None:
            last = await self._app_output(ref)
            said = f"; last output: {last[-1][:200]}" if last else ""
            raise StageFailed(f"the worker exited within its first {settle:g} s ({how}){said}")
        self.finish("health_checking", message=f"stayed up for {settle:g} s")

    async def _app_output(self, ref: str) -> list[str]:
        """The instance's last lines, copied to the deployment's log."""
        lines = (await self.target.recent_output(ref)).splitlines()[-20:]
        for line in lines:
            self.log.write(f"[app] {line}")
        return [line for line in lines if line.strip()]

    async def switching(self, host_port: int | None) -> None:
        if host_port is None:  # a worker takes no traffic: the service has no routes to send
            await self.enter("switching", "a worker: no traffic to send")
        else:
            await self.enter("switching", f"sending traffic to 127.0.0.1:{host_port}")
        # A release is live as soon as traffic goes to it (SPEC §13): from the switch to the
        # commit that says so and the old release's retirement, a cancel waits, so a live
        # release is never reported (or cleaned up) as cancelled, and the old one never stays.
        await run_to_end(self._go_live_and_retire(host_port))

    async def _go_live_and_retire(self, host_port: int | None) -> None:
        previous = await self._go_live(host_port)
        self.stopped = None  # stop-first: it stays down, this release took over
        await self._retire(previous)

    async def _go_live(self, host_port: int | None) -> Deployment | None:
        service_id = self.deployment.service_id
        upstream = upstream_of(self.deployment, host_port)
        new_route = await self._domain_route()
        where = f"on {', '.join(upstream)}" if upstream else "as a worker"
        async with self.d.router.changing(
            add=[new_route] if new_route else [], point={service_id: upstream}
        ):
            if new_route is not None:
                async with self.d.db.transaction() as conn:
                    await routes.insert_route(conn, new_route)
                self.log.write(f"routed {new_route.domain} to {self.deployment.service_name}")
            self.finish("switching", message="live")
            await self._update({"stages": self.stages}, None)
            # The log is complete before the status says so: a follower stops at the status.
            self.log.write(f"==> live: release {self.deployment.number} {where}")
            await self.log.flush()
            live, previous = await deployments.make_live(
                self.d.db, self.deployment, f"release {self.deployment.number} is live"
            )
        self.deployment = live
        self.instance_ref = None  # from here on it is the live instance, never cleaned up
        self.built = None
        return previous

    async def _domain_route(self) -> Route | None:
        """The route `domain` asks for, when the service has none for it yet (SPEC §5)."""
        domain = self.spec.domain
        if domain is None:
            return None
        for record in await routes.routes_of_service(self.d.db, self.deployment.service_id):
            if record.route.domain == domain and record.route.path_prefix == "/":
                return None
        if await routes.domain_holder(self.d.db, domain, self.deployment.owner_id) is not None:
            raise StageFailed(f"{domain} is routed by another user now; choose another domain")
        return routes.new_route(self.deployment.service_id, domain, "/", default_tls(domain), None)

    async def _retire(self, previous: Deployment | None) -> None:
        """Let the old instance drain, stop it, and prune artifacts past keep_releases. The new
        release is live already: a failure here is logged, and reconcile removes what is left
        (a container of a release that is not live) at the next start."""
        try:
            if previous is not None and previous.instance_ref:
                retired = self.d.target_of(previous)
                if not retired.rolling:  # Swarm drained the old tasks already
                    await self.d.drain()
                await retired.stop(previous.instance_ref)
                await deployments.update_deployment(
                    self.d.db, previous.id, {"instance_ref": None}, None
                )
                self.log.write(f"stopped release {previous.number} after draining")
            await releases.prune_artifacts(self.d, self.deployment.service_id)
        except DployrError as err:
            self._left_behind("could not retire the previous release", err)

    def _left_behind(self, what: str, err: DployrError) -> None:
        self.log.write(f"{what}: {err.message} (reconcile removes it at the next start)")
        _LOGGER.warning("deployment %s: %s: %s", self.deployment.id, what, err.message)

    # -- endings -------------------------------------------------------------------------------

    async def _cleanup(self) -> None:
        """Best effort: the deployment ends (failed or cancelled) even when the engine
        cannot remove its instance right now."""
        try:
            if self.instance_ref:
                await self.target.abandon(self.instance_ref)
            if self.built:
                await self.target.remove_artifact(self.built)
        except DployrError as err:
            self._left_behind("could not remove the instance", err)
        if self.stopped is not None:  # stop-first: the live release runs again
            previous, self.stopped = self.stopped, None
            self.log.write(f"stop-first: {await bring_back(self.d, previous)}")

    async def _end_failed(self, message: str) -> None:
        if self.deployment.status == "live":  # interrupted while the old release drained
            return
        message = self.log.mask(message)
        if self.stage:
            self.finish(self.stage, "failed", message)
        self.log.write(f"==> failed: {message}")
        await self._cleanup()
        await self.log.flush()
        await self._update(
            {"status": "failed", "error": message, "stages": self.stages, "finished_at": now_iso()},
            ("deployment.failed", message, self.stage),
        )

    async def _end_cancelled(self, reason: str | None) -> None:
        if self.deployment.status == "live":
            return
        if reason == "shutdown":
            await self._end_failed(
                f"interrupted: the daemon stopped during {self.stage or 'start'}"
            )
            return
        if self.stage:
            self.finish(self.stage, "failed", "cancelled")
        self.log.write("==> cancelled")
        await self._cleanup()
        await self.log.flush()
        await self._update(
            {"status": "cancelled", "stages": self.stages, "finished_at": now_iso()},
            ("deployment.cancelled", "cancelled", self.stage),
        )

    # -- credentials -----------------------------------------------------------------------------

    async def _credential_secrets(self) -> list[str]:
        try:
            found = await self.d.credential(self.deployment.owner_id, self.spec.credential_id)
        except DployrError:
            return []
        if found is None:
            return []
        secret = found[1]
        return [secret, *(line for line in secret.splitlines() if len(line) >= 8)]
