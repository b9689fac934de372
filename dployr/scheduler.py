"""Every periodic job of the daemon, listed in one place (apscheduler)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from dployr.databases import backups as database_backups
from dployr.databases import reconcile as database_reconcile
from dployr.databases.manager import Databases
from dployr.keys import CONFIG, DATABASES, DB, DEPLOYER, HOST_METRICS, SCHEDULER, SERVICE_METRICS
from dployr.metrics.watch import CrashWatch
from dployr.pipeline import poll
from dployr.store import databases as database_store
from dployr.store import sessions

_LOGGER = logging.getLogger(__name__)


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    # A run that comes late (a busy loop, a start under load) still runs, once: no "missed"
    # warning, no lost sample.
    scheduler = AsyncIOScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    db = app[DB]
    # Expired revocations and refresh tokens can no longer be presented: drop them hourly.
    scheduler.add_job(
        sessions.purge_expired,
        "interval",
        hours=1,
        args=[db],
        id="purge_expired_tokens",
        coalesce=True,
        max_instances=1,
    )
    # The host is sampled every metrics.interval seconds, the first time at once (so `current`
    # exists as soon as the daemon is up); complete minutes and hours are rolled up each minute.
    recorder = app[HOST_METRICS]
    scheduler.add_job(
        recorder.record,
        "interval",
        seconds=app[CONFIG].metrics.interval,
        next_run_time=datetime.now(UTC),
        id="sample_host",
        coalesce=True,
        max_instances=1,
    )
    scheduler.add_job(
        _roll_up,
        "interval",
        minutes=1,
        args=[app],
        id="roll_up_metrics",
        coalesce=True,
        max_instances=1,
    )
    # Each running service's usage, through its target, at the same interval.
    scheduler.add_job(
        _sample_services,
        "interval",
        seconds=app[CONFIG].metrics.interval,
        args=[app],
        id="sample_services",
        coalesce=True,
        max_instances=1,
    )
    # Each running service's live instance, for crash loops (service.crashed once an episode).
    crashes = CrashWatch(app[CONFIG].alerts.healthy_seconds)
    scheduler.add_job(
        _watch_services,
        "interval",
        seconds=app[CONFIG].metrics.interval,
        args=[app, crashes],
        id="watch_services",
        coalesce=True,
        max_instances=1,
    )
    # auto_deploy "poll" (SPEC §13): ls-remote of each polled service's branch.
    scheduler.add_job(
        _poll_remotes,
        "interval",
        seconds=app[CONFIG].runtime.poll_interval,
        args=[app],
        id="poll_remotes",
        coalesce=True,
        max_instances=1,
    )
    # Managed databases (SPEC §14): each one's backup_schedule, and a watch that brings back a
    # database whose container stopped or went (reconcile).
    databases = app.get(DATABASES)
    if databases is not None:
        databases.jobs = BackupJobs(scheduler, databases)
        for record in await database_store.all_databases(db):
            databases.jobs.set(record.id, record.backup_schedule)
        scheduler.add_job(
            database_reconcile.reconcile,
            "interval",
            seconds=app[CONFIG].metrics.interval,
            args=[databases],
            id=WATCH_DATABASES,
            coalesce=True,
            max_instances=1,
        )
    app[SCHEDULER] = scheduler
    scheduler.start()
    yield
    if databases is not None:
        databases.jobs = None
    scheduler.shutdown(wait=False)


WATCH_DATABASES = "watch_databases"


def backup_job_id(database_id: str) -> str:
    return f"backup_{database_id}"


class BackupJobs:
    """Each managed database's backup_schedule (a cron expression, UTC) as a job."""

    def __init__(self, scheduler: AsyncIOScheduler, databases: Databases) -> None:
        self._scheduler = scheduler
        self._databases = databases

    def set(self, database_id: str, cron: str) -> None:
        self._scheduler.add_job(
            database_backups.scheduled_backup,
            CronTrigger.from_crontab(cron, timezone="UTC"),
            args=[self._databases, database_id],
            id=backup_job_id(database_id),
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )

    def remove(self, database_id: str) -> None:
        if self._scheduler.get_job(backup_job_id(database_id)) is not None:
            self._scheduler.remove_job(backup_job_id(database_id))


async def _roll_up(app: web.Application) -> None:
    await app[HOST_METRICS].roll_up()
    await app[SERVICE_METRICS].roll_up()


async def _sample_services(app: web.Application) -> None:
    deployer = app.get(DEPLOYER)
    if deployer is not None:
        await app[SERVICE_METRICS].record(deployer)


async def _watch_services(app: web.Application, crashes: CrashWatch) -> None:
    deployer = app.get(DEPLOYER)
    if deployer is not None:
        await crashes.check(deployer)


async def _poll_remotes(app: web.Application) -> None:
    deployer = app.get(DEPLOYER)  # looked up per round: it is absent while the daemon starts
    if deployer is not None:
        await poll.poll_services(deployer)
