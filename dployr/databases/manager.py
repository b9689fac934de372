"""Managed databases as a product: create, delete, and the one-at-a-time rule of each database's
operations (create, backup, restore, reconcile), which run in the background and are tracked
here so that a delete or a shutdown can stop them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import shutil
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from dployr.config import Config
from dployr.crypto import MASK, SecretBox
from dployr.databases.containers import DatabaseContainers
from dployr.databases.engines import ENGINE, DatabaseSpec
from dployr.errors import Conflict, DployrError, Unavailable, ValidationError
from dployr.runtime.docker import DockerTarget
from dployr.runtime.ports import free_loopback_port
from dployr.runtime.protocol import RuntimeFailure
from dployr.store import databases as store
from dployr.store import projects
from dployr.store.databases import KeptVolume, ManagedDatabase, NewDatabase
from dployr.store.db import Database
from dployr.tasks import run_to_end

_LOGGER = logging.getLogger(__name__)
REGISTRY_TIMEOUT = 20.0  # asking the registry whether it has an image (not pulling it)
READY_TIMEOUT = 180.0  # a first start initialises the data directory: slow on a busy host
PASSWORD_BYTES = 32  # secrets.token_urlsafe(32): 32 random bytes, 43 URL-safe characters


class BackupJobs(Protocol):
    """The scheduler's side (dployr.scheduler): each database's backup_schedule as a job."""

    def set(self, database_id: str, cron: str) -> None: ...

    def remove(self, database_id: str) -> None: ...


@dataclass(frozen=True)
class CreateRequest:
    owner_id: str
    name: str
    engine: str
    version: str
    project_id: str | None
    backup_schedule: str
    keep_backups: int


class Databases:
    """Every managed database of this daemon, on the docker target's engine."""

    def __init__(
        self,
        db: Database,
        config: Config,
        box: SecretBox,
        docker: DockerTarget,
        containers: DatabaseContainers,
    ) -> None:
        self.db = db
        self.config = config
        self.box = box
        self.docker = docker
        self.containers = containers
        self.jobs: BackupJobs | None = None  # set once the scheduler runs
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: dict[str, set[asyncio.Task[None]]] = {}

    # -- the one-at-a-time rule ---------------------------------------------------------------

    def lock(self, database_id: str) -> asyncio.Lock:
        """A database's operations run one at a time, in the order they came."""
        return self._locks.setdefault(database_id, asyncio.Lock())

    def spawn(self, database_id: str, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` in the background, tracked: a delete or a shutdown cancels it."""
        task = asyncio.create_task(self.logged(work, what), name=f"{what} {database_id}")
        tasks = self._tasks.setdefault(database_id, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def busy(self, database_id: str) -> bool:
        """Something of this database runs in this process (a reconcile round skips it)."""
        return bool(self._tasks.get(database_id)) or self.lock(database_id).locked()

    @staticmethod
    async def logged(work: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("%s crashed", what)

    async def cancel(self, database_id: str) -> None:
        """Cancel the database's background work and wait for it to end."""
        tasks = list(self._tasks.get(database_id, ()))
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def shutdown(self, grace: float) -> None:
        """Stop every background operation: a create's row stays `creating` (reconcile finishes
        it at the next start), a backup ends `failed`, a restore is reported by reconcile."""
        tasks = [task for group in self._tasks.values() for task in group]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)

    # -- what a database is made of -------------------------------------------------------------

    def spec_of(self, record: ManagedDatabase) -> DatabaseSpec:
        return DatabaseSpec(
            id=record.id,
            owner_id=record.owner_id,
            name=record.name,
            engine=record.engine,
            image=record.image,
            username=record.username,
            password=self.box.decrypt(record.password_enc),
            database=record.database,
            host_port=record.host_port,
            volume=record.volume,
        )

    def masked_url(self, record: ManagedDatabase) -> str:
        """The URL from this host (the loopback port), its password masked."""
        spec = DatabaseSpec(
            record.id,
            record.owner_id,
            record.name,
            record.engine,
            record.image,
            record.username,
            MASK,
            record.database,
            record.host_port,
            record.volume,
        )
        return ENGINE[record.engine].url(spec, "127.0.0.1", record.host_port)

    def image_of(self, engine: str, version: str) -> str:
        return self.config.database_images[engine].image.format(version=version)

    async def require_engine(self) -> None:
        """Databases run on the docker target's engine: a 503 naming why when it cannot."""
        problem = await self.docker.problem()
        if problem is not None:
            raise Unavailable(
                f"Managed databases run on the Docker engine, which does not answer: {problem}",
                details={"runtime": problem},
            )

    async def check_image(self, image: str, engine: str) -> None:
        """The engine's image is on this host, or its registry knows it (it is pulled at the
        create): an unknown version is a 400 now, not a failed database later."""
        if await self.docker.get_json(f"/images/{quote(image, safe='/:@')}/json") is not None:
            return
        try:
            async with asyncio.timeout(REGISTRY_TIMEOUT):
                await self.docker.get_json(f"/distribution/{quote(image, safe='/:@')}/json")
        except (RuntimeFailure, TimeoutError) as err:
            reason = str(err) or "the registry did not answer"
            raise ValidationError(
                "version",
                f"image {image} is not on this host and its registry does not give it "
                f"({reason}); choose another version, or pull it, or set "
                f"[databases.{engine}] image",
            ) from None

    async def free_port(self) -> int:
        """A loopback port nothing listens on and no other database has."""
        taken = await store.used_host_ports(self.db)
        while True:
            port = await asyncio.to_thread(free_loopback_port)
            if port not in taken:
                return port

    async def container_of(self, record: ManagedDatabase) -> str | None:
        """The database's container: the row's, else the one the engine has for it (a create
        cut short before the row learned its id)."""
        if record.container_id:
            return record.container_id
        return (await self.containers.containers()).get(record.id)

    # -- create ---------------------------------------------------------------------------------

    async def create(self, request: CreateRequest) -> tuple[ManagedDatabase, str]:
        """The row (`creating`) and the password, shown once; the container is made in the
        background: `running` + database.created, or `failed` + database.failed."""
        await self.require_engine()
        engine = ENGINE[request.engine]
        if (refused := engine.refuses(request.name)) is not None:
            raise ValidationError("name", refused)
        image = self.image_of(request.engine, request.version)
        await self.check_image(image, request.engine)
        username, database = engine.names(request.name)
        new = NewDatabase(
            owner_id=request.owner_id,
            project_id=request.project_id,
            name=request.name,
            engine=request.engine,
            version=request.version,
            image=image,
            host_port=await self.free_port(),
            username=username,
            database=database,
            password=secrets.token_urlsafe(PASSWORD_BYTES),
            backup_schedule=request.backup_schedule,
            keep_backups=request.keep_backups,
        )
        async with self.db.transaction() as conn:
            project_id = request.project_id or await projects.default_project_id(
                conn, request.owner_id
            )
            kept = await store.take_kept_volume(conn, request.owner_id, request.name)
            if kept is not None:
                new = self._on_kept_volume(new, kept)
            record = await store.insert_database(conn, new, project_id, self.box)
        if self.jobs is not None:
            self.jobs.set(record.id, record.backup_schedule)
        self.spawn(record.id, self.bring_up(record.id, fresh=True), "create")
        return record, new.password

    def _on_kept_volume(self, new: NewDatabase, kept: KeptVolume) -> NewDatabase:
        """A database made on the kept volume of one of the same name: its data knows the old
        credentials (the engines read their environment only when the data dir is empty)."""
        if kept.engine != new.engine:
            raise Conflict(
                f"The kept data of a {kept.engine} database is named {new.name!r}: use that "
                "engine to attach it again, or another name",
                details={"field": "name", "reason": f"kept {kept.engine} data has this name"},
            )
        return dataclasses.replace(
            new,
            volume=kept.volume,
            username=kept.username,
            database=kept.database,
            password=self.box.decrypt(kept.password_enc),
        )

    async def bring_up(self, database_id: str, *, fresh: bool) -> None:
        """Make (or start) the database's container and wait until its engine answers. `fresh`:
        a new database, whose failure removes what was made; else (reconcile) the data stays."""
        async with self.lock(database_id):
            record = await store.get_database(self.db, database_id, None)
            if record is None:
                return
            await self.bring_up_locked(record, fresh=fresh)

    async def bring_up_locked(self, record: ManagedDatabase, *, fresh: bool) -> None:
        """bring_up, its caller holding the database's lock (reconcile)."""
        spec = self.spec_of(record)
        container: str | None = None
        try:
            container = await self.container_of(record)
            if await self.containers.state(container) == "missing":
                container = await self.containers.create(spec)
            else:
                assert container is not None
                await self.containers.start(container)
            await run_to_end(store.update_database(self.db, record.id, {"container_id": container}))
            problem = await self.containers.wait_ready(container, spec, READY_TIMEOUT)
        except DployrError as err:
            problem = err.message
        if problem is None:
            await store.update_database(
                self.db,
                record.id,
                {"status": "running", "error": None},
                ("database.created", self.event_data(record)) if fresh else None,
            )
            _LOGGER.info("database %s (%s) is running", record.name, record.id)
            return
        _LOGGER.error("database %s (%s) failed: %s", record.name, record.id, problem)
        if not fresh:
            # One that ran before stays `stopped` (its data is there): every watch round tries
            # it again. Its failure is an event once, when it stops being available.
            await store.update_database(
                self.db,
                record.id,
                {"status": "stopped", "error": problem, "container_id": container},
                None
                if record.status == "stopped"
                else ("database.failed", {**self.event_data(record), "error": problem}),
            )
            return
        # Nothing of a new database is worth keeping; a kept volume it took stays.
        kept = record.volume != store.new_volume_name(record.id)
        with contextlib.suppress(DployrError):
            await self.containers.remove(container, spec, keep_data=kept)
        await store.update_database(
            self.db,
            record.id,
            {"status": "failed", "error": problem, "container_id": None},
            ("database.failed", {**self.event_data(record), "error": problem}),
        )

    @staticmethod
    def event_data(record: ManagedDatabase) -> dict[str, Any]:
        return {
            "database_id": record.id,
            "name": record.name,
            "engine": record.engine,
            "version": record.version,
            "project_id": record.project_id,
            "host_port": record.host_port,
        }

    # -- delete ---------------------------------------------------------------------------------

    async def delete(self, record: ManagedDatabase, *, keep_data: bool, force: bool) -> None:
        """Remove the container, and its volume and backups unless `keep_data`. Linked → 409
        unless `force`, which unlinks first (the services' env vars go)."""
        linked = [link.service_id for link in await store.links_of(self.db, record.id)]
        if linked and not force:
            raise Conflict(
                f"Database {record.name!r} is linked to {len(linked)} service(s); unlink them "
                "first or use ?force=true",
                details={"linked_service_ids": linked},
            )
        await self.require_engine()
        await self.cancel(record.id)  # a create, backup or restore of it stops here
        async with self.lock(record.id):
            fresh = await store.get_database(self.db, record.id, None)
            if fresh is None:
                return
            await self.containers.remove(
                await self.container_of(fresh), self.spec_of(fresh), keep_data=keep_data
            )
            async with self.db.transaction() as conn:
                for link in await store.links_of(conn, record.id):
                    await store.remove_link(conn, record.id, link.service_id)
                await store.delete_database(conn, record.id)
                if keep_data:  # the same name attaches it again
                    await store.keep_volume(conn, fresh)
            if self.jobs is not None:
                self.jobs.remove(record.id)
            if not keep_data:
                await asyncio.to_thread(
                    shutil.rmtree, self.config.backup_path / record.id, ignore_errors=True
                )
        self._locks.pop(record.id, None)
        _LOGGER.info("database %s (%s) deleted", record.name, record.id)
