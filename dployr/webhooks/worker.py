"""The delivery worker: reads the event log into deliveries, sends those due, retries, resumes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import AsyncIterator

from dployr.config import WebhooksConfig
from dployr.crypto import SecretBox
from dployr.events.bus import EventBus
from dployr.ids import iso_in, now_iso, parse_iso, utcnow
from dployr.metrics.agent import AgentCounters
from dployr.store import deliveries, webhooks
from dployr.store.db import Database
from dployr.store.deliveries import Attempt, Delivery
from dployr.webhooks.address import AddressRefused, check_url
from dployr.webhooks.sender import Response, post
from dployr.webhooks.signing import signed_headers

_LOGGER = logging.getLogger(__name__)
CONCURRENCY = 8  # attempts in flight at once; one slow receiver never holds the others
IDLE_RECHECK = 30.0  # seconds: the log is re-read this often even if the bus said nothing
JITTER = 0.2  # each retry delay is the schedule's ± 20 %
NOT_ALLOWED = "address not allowed"


class DeliveryWorker:
    """One task. The bus only wakes it: what to send always comes from the persisted log and
    the deliveries table, so a dropped bus message or a restart loses nothing."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        config: WebhooksConfig,
        bus: EventBus,
        counters: AgentCounters | None = None,
    ) -> None:
        self._db, self._box, self._config, self.bus = db, box, config, bus
        self._counters = counters or AgentCounters()
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}

    def kick(self) -> None:
        """Look at the log and the due deliveries now (after a ping, a redeliver, an event)."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                try:
                    while await deliveries.fan_out(self._db):
                        pass
                    await self._start_due()
                    delay = await self._until_next_due()
                except Exception:  # a store error must not end the deliveries for good
                    _LOGGER.exception("webhook delivery pass failed; retrying")
                    delay = IDLE_RECHECK
                # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result
                # when a cancel comes as the wait ends, and the task then never stops.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
        finally:
            tasks = list(self._in_flight.values())
            for task in tasks:
                task.cancel()
            # An attempt cut short stays pending and is sent again after a restart.
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _start_due(self) -> None:
        free = CONCURRENCY - len(self._in_flight)
        if free <= 0:
            return
        due = await deliveries.due_deliveries(self._db, now_iso(), CONCURRENCY * 2)
        for delivery in due:
            if free <= 0:
                break
            if delivery.id in self._in_flight:
                continue
            task = asyncio.create_task(self._attempt(delivery))
            self._in_flight[delivery.id] = task
            task.add_done_callback(functools.partial(self._finished, delivery.id))
            free -= 1

    def _finished(self, delivery_id: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(delivery_id, None)
        self.kick()

    async def _until_next_due(self) -> float:
        if len(self._in_flight) >= CONCURRENCY:
            return IDLE_RECHECK  # a finishing attempt kicks
        due = await deliveries.next_due_at(self._db)
        if due is None:
            return IDLE_RECHECK
        seconds = (parse_iso(due) - utcnow()).total_seconds()
        # Timestamps have whole seconds: a little past the due second, never a busy loop.
        return min(IDLE_RECHECK, max(0.05, seconds + 0.05))

    async def _attempt(self, delivery: Delivery) -> None:
        try:
            response = await self._send(delivery)
            if response is None:
                return
            attempt = self.outcome(delivery, response)
            ended = await deliveries.record_attempt(self._db, delivery, attempt)
            self._counters.count_attempt(attempt.status, ended)  # once it is recorded
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("webhook delivery %s: the attempt failed", delivery.id)

    async def _send(self, delivery: Delivery) -> Response | None:
        webhook = await webhooks.get_webhook(self._db, delivery.webhook_id, None)
        if webhook is None or not webhook.active:
            return None  # deleted (its deliveries went with it) or switched off meanwhile
        try:
            # Checked again at every send, and the connection goes to what was checked.
            target = await check_url(webhook.url, self._config.allow_private)
        except AddressRefused as err:
            _LOGGER.warning("webhook %s: %s (%s)", webhook.id, NOT_ALLOWED, err)
            return Response(None, NOT_ALLOWED, None, 0)
        secret = self._box.decrypt(webhook.secret_enc)
        headers = signed_headers(
            secret, delivery.id, delivery.event_type, delivery.body, int(time.time())
        )
        return await post(target, headers, delivery.body, self._config.timeout)

    def outcome(self, delivery: Delivery, response: Response) -> Attempt:
        code = response.status_code
        log = (code, response.error, response.excerpt, response.latency_ms)
        if code is not None and 200 <= code < 300:
            return Attempt("delivered", *log, next_attempt_at=None)
        if code == 410:
            return Attempt("failed", *log, next_attempt_at=None, disable_webhook=True)
        error = response.error or f"the receiver answered HTTP {code}"
        log = (code, error, response.excerpt, response.latency_ms)
        done = delivery.attempts + 1  # attempts made, this one included
        schedule = self._config.retry_schedule
        if done > len(schedule):
            return Attempt("failed", *log, next_attempt_at=None)
        delay = schedule[done - 1] * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 (jitter)
        return Attempt("pending", *log, next_attempt_at=iso_in(delay))


@contextlib.asynccontextmanager
async def running(worker: DeliveryWorker) -> AsyncIterator[DeliveryWorker]:
    task = asyncio.create_task(worker.run())
    try:
        with worker.bus.waking(worker.kick):  # each committed event wakes it
            yield worker
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
