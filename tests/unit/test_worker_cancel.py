"""A cancel that comes as the delivery worker wakes still stops it (Python 3.11's wait_for
returned the wake-up instead, and the daemon's shutdown waited for the worker forever)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dployr.config import WebhooksConfig
from dployr.crypto import SecretBox
from dployr.events.bus import EventBus
from dployr.store.db import Database
from dployr.webhooks.worker import DeliveryWorker


async def test_a_cancel_as_the_worker_wakes_stops_it(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "dployr.db")
    try:
        worker = DeliveryWorker(db, SecretBox(bytes(32)), WebhooksConfig(), EventBus())
        for _ in range(5):
            task = asyncio.create_task(worker.run())
            await asyncio.sleep(0.2)  # it has looked at the log and waits to be woken
            worker.kick()  # the wake-up and the cancel land in the same turn of the loop
            task.cancel()
            async with asyncio.timeout(5):
                await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled()
    finally:
        await db.close()
