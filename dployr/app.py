"""create_app(config): keys, lifetimes (cleanup_ctx), middlewares and routes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from dployr import scheduler
from dployr.api import setup_routes
from dployr.api.middleware import access_control, error_envelope, log_requests
from dployr.auth.clients import TrustedProxies
from dployr.auth.follows import FollowSlots
from dployr.auth.jwt_tokens import AccessTokens, load_or_create_key
from dployr.auth.ratelimit import RateLimits
from dployr.auth.service import AuthService
from dployr.config import Config
from dployr.crypto import SecretBox
from dployr.databases.containers import DatabaseContainers
from dployr.databases.manager import Databases
from dployr.databases.reconcile import reconcile_at_start
from dployr.datadir import DataDirLock
from dployr.events.bus import EventBus
from dployr.events.sockets import Sockets
from dployr.ids import new_id
from dployr.keys import (
    AGENT_COUNTERS,
    AUTH,
    BOX,
    BUS,
    CONFIG,
    DATABASES,
    DB,
    DEPLOYER,
    FOLLOWS,
    HOST_METRICS,
    RATE_LIMITS,
    SERVICE_METRICS,
    SOCKETS,
    STARTED_AT,
    TRUSTED_PROXIES,
    WEBHOOKS,
)
from dployr.metrics.agent import AgentCounters
from dployr.metrics.alerts import HostAlerts
from dployr.metrics.recorder import HostRecorder
from dployr.metrics.services import ServiceRecorder
from dployr.pipeline.deployer import Deployer
from dployr.pipeline.reconcile import reconcile, reconcile_when_ready
from dployr.pipeline.routing import Router
from dployr.pipeline.uploads import sweep_uploads
from dployr.proxy import make_proxy
from dployr.proxy.swarm import SwarmProxy
from dployr.runtime.docker import DockerTarget
from dployr.runtime.targets import make_targets
from dployr.store.db import Database
from dployr.store.events import Event
from dployr.webhooks.worker import DeliveryWorker, running

_LOGGER = logging.getLogger(__name__)


def create_app(config: Config) -> web.Application:
    app = web.Application(
        middlewares=[log_requests, error_envelope, access_control],
        client_max_size=config.server.max_body_bytes,
    )
    app[CONFIG] = config
    app[STARTED_AT] = time.monotonic()
    limits = config.rate_limit
    app[RATE_LIMITS] = RateLimits.per_config(
        limits.authenticated_per_hour, limits.anonymous_per_hour, limits.login_per_15min
    )
    app[BUS] = EventBus()
    app[AGENT_COUNTERS] = AgentCounters()
    app[FOLLOWS] = FollowSlots(config.server.follow_streams_per_user)
    app[TRUSTED_PROXIES] = TrustedProxies.from_config(config)
    app[SOCKETS] = Sockets(config.server.ws_per_user)
    app.on_shutdown.append(close_sockets)  # before aiohttp waits for handlers to end
    app.cleanup_ctx.extend(
        [
            database_ctx,
            auth_ctx,
            deployer_ctx,
            databases_ctx,
            metrics_ctx,
            webhooks_ctx,
            scheduler.scheduler_ctx,
        ]
    )
    setup_routes(app)
    return app


async def close_sockets(app: web.Application) -> None:
    await app[SOCKETS].close_all()


async def prepare_data_dir(config: Config) -> None:
    def make() -> None:
        config.data_path.mkdir(mode=0o700, parents=True, exist_ok=True)

    await asyncio.to_thread(make)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    await prepare_data_dir(config)
    # Held until the database is closed: a second daemon, or a `dployr restore`, on this data
    # dir is refused instead of writing beside this one.
    lock = await asyncio.to_thread(DataDirLock.acquire, config.data_path, "dployr serve")
    try:
        app[DB] = await Database.open(config.db_path)
        bus, counters = app[BUS], app[AGENT_COUNTERS]

        def publish(event: Event) -> None:
            # Every committed event, from the one place it commits: to the bus, and to the
            # counters (a deployment ends with its terminal event, wherever it ends).
            counters.observe_event(event)
            bus.publish(event)

        app[DB].publish = publish
        _LOGGER.info("database open at %s", config.db_path)
        yield
        await app[DB].close()
    finally:
        await asyncio.to_thread(lock.release)


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    # This host's instance id is the data dir's agent id (deployer_ctx made it).
    agent_id = await asyncio.to_thread(load_agent_id, config.data_path / "agent_id")
    recorder = HostRecorder(
        app[DB],
        config.data_path,
        config.metrics.interval,
        agent_id,
        alerts=HostAlerts(config.alerts),
    )
    await recorder.start()
    app[HOST_METRICS] = recorder
    app[SERVICE_METRICS] = ServiceRecorder(app[DB], config.metrics.interval)
    yield
    # The samples still buffered are not lost on a clean stop.
    await recorder.flush()
    await app[SERVICE_METRICS].flush()


async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    if config.auth.jwt_secret:
        key = config.auth.jwt_secret.encode("utf-8")
    else:
        key = await asyncio.to_thread(load_or_create_key, config.data_path / "secrets" / "jwt.key")
    service = AuthService(app[DB], config.auth, AccessTokens(key, config.auth.access_ttl))
    app[AUTH] = service
    # The dummy hash for unknown-email logins is made in the background, not on the start path.
    warm_up = asyncio.create_task(service.passwords.warm_up())
    yield
    warm_up.cancel()


def load_agent_id(path: Path) -> str:
    """This data dir's identity: every container and image it makes carries it as a label,
    so several agents (or test runs) on one engine never touch each other's."""
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        agent_id = new_id("agt")
        path.write_text(agent_id + "\n", "ascii")
        return agent_id


async def deployer_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    secrets_dir = config.data_path / "secrets"
    box = await asyncio.to_thread(SecretBox.from_file, secrets_dir / "secrets.key")
    agent_id = await asyncio.to_thread(load_agent_id, config.data_path / "agent_id")
    targets = make_targets(config, agent_id)
    docker = targets.get("docker")
    assert isinstance(docker, DockerTarget)
    # Made with no engine call: it starts once a swarm service exists (SPEC §15).
    swarm_proxy = SwarmProxy(config, agent_id, docker)
    router = Router(app[DB], await make_proxy(config), config, swarm_proxy)
    deployer = Deployer(app[DB], config, targets, router, box)
    app[BOX], app[DEPLOYER] = box, deployer
    await sweep_uploads(deployer)
    problems = await targets.problems()
    # Before the first request: the releases of every target that answers. One that can come
    # up later (an engine that starts after us) is reconciled as soon as it answers.
    await reconcile(deployer, {name for name, problem in problems.items() if problem is None})
    late = []
    for target in targets:
        if problems[target.name] is not None and target.late:
            _LOGGER.warning(
                "%s releases are reconciled when it answers: %s", target.name, problems[target.name]
            )
            late.append(asyncio.create_task(reconcile_when_ready(deployer, target)))
    yield
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    await deployer.shutdown(config.server.shutdown_timeout)
    await targets.close()


async def _reconcile_databases(databases: Databases) -> None:
    await reconcile_at_start(databases)
    _LOGGER.info("managed databases reconciled")


async def databases_ctx(app: web.Application) -> AsyncIterator[None]:
    """Managed databases on the docker target's engine: reconciled in the background as soon
    as the engine answers (the API answers meanwhile); their work stops at shutdown."""
    config, deployer = app[CONFIG], app.get(DEPLOYER)
    if deployer is None:  # deployer_ctx made none (tests that start without it)
        yield
        return
    docker = deployer.targets.get("docker")
    assert isinstance(docker, DockerTarget)
    agent_id = await asyncio.to_thread(load_agent_id, config.data_path / "agent_id")
    databases = Databases(
        app[DB], config, deployer.box, docker, DatabaseContainers(docker, agent_id)
    )
    app[DATABASES] = databases
    start = asyncio.create_task(
        databases.logged(_reconcile_databases(databases), "reconcile databases")
    )
    yield
    start.cancel()
    await asyncio.gather(start, return_exceptions=True)
    await databases.shutdown(config.server.shutdown_timeout)


async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """The delivery worker: pending deliveries left by the last run are sent from the start."""
    box = app.get(BOX)
    if box is None:  # deployer_ctx made none (tests that start without it)
        path = app[CONFIG].data_path / "secrets" / "secrets.key"
        box = await asyncio.to_thread(SecretBox.from_file, path)
    worker = DeliveryWorker(app[DB], box, app[CONFIG].webhooks, app[BUS], app[AGENT_COUNTERS])
    app[WEBHOOKS] = worker
    async with running(worker):
        yield
