"""An in-process publish/subscribe bus for committed events; slow subscribers lose, never block."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from dployr.store.events import Event

_LOGGER = logging.getLogger(__name__)


class Subscription:
    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.overflowed = False
        self.dropped = asyncio.Event()  # set with overflowed: a waiting reader learns of it

    async def next(self) -> Event:
        return await self.queue.get()


class EventBus:
    """Publish only after the event's transaction committed; subscribers read from a queue.

    A subscriber that falls `maxsize` events behind is marked overflowed and stops receiving:
    it must re-read the persisted log (by seq) to catch up. The publisher never waits."""

    def __init__(self, maxsize: int = 1000) -> None:
        self._maxsize = maxsize
        self._subscribers: set[Subscription] = set()
        self.dropped = 0  # subscribers dropped for falling behind, since start (for /metrics)
        # Called (no argument) after each publish: a reader of the persisted log that only
        # needs waking (the webhook worker) holds no queue, so it can never fall behind.
        self._wakers: list[Callable[[], None]] = []

    def publish(self, event: Event) -> None:
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.overflowed = True
                sub.dropped.set()
                self._subscribers.discard(sub)
                self.dropped += 1
                _LOGGER.warning("an event subscriber fell behind and was dropped")
        for wake in list(self._wakers):
            wake()

    @contextmanager
    def waking(self, wake: Callable[[], None]) -> Iterator[None]:
        """Call `wake` after every publish while inside."""
        self._wakers.append(wake)
        try:
            yield
        finally:
            self._wakers.remove(wake)

    @asynccontextmanager
    async def subscribe(self, maxsize: int | None = None) -> AsyncIterator[Subscription]:
        sub = Subscription(maxsize or self._maxsize)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
