"""Every periodic job of the daemon, listed in one place (apscheduler)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dployr.keys import DB
from dployr.store import sessions

_LOGGER = logging.getLogger(__name__)


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    scheduler = AsyncIOScheduler(timezone="UTC")
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
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)
