"""One subscriber's events: a replay of the persisted log after `since`, then live ones from the
bus, with no gap and no duplicate at the boundary, filtered by type and owner."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

from dployr.events.bus import EventBus, Subscription
from dployr.store.db import Database
from dployr.store.events import Event, events_after

_PATTERN = re.compile(r"^(\*|[a-z][a-z_]*(\.[a-z][a-z_]*)*(\.\*)?)$")


class FeedDropped(Exception):
    """The subscriber fell more events behind than its queue holds; it must reconnect."""


def valid_pattern(pattern: str) -> bool:
    """An exact type (`service.started`), a prefix (`deployment.*`) or `*`."""
    return len(pattern) <= 100 and _PATTERN.match(pattern) is not None


@dataclass(frozen=True)
class EventFilter:
    patterns: tuple[str, ...] = ()  # empty: every type
    owner_id: str | None = None  # None: every owner's (an admin's `all`)

    def matches(self, event: Event) -> bool:
        if self.owner_id is not None and event.owner_id != self.owner_id:
            return False
        return not self.patterns or any(_type_matches(p, event.type) for p in self.patterns)


def _type_matches(pattern: str, type_: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return type_.startswith(pattern[:-1])
    return pattern == type_


class EventFeed:
    """Subscribe to the bus before reading the log: an event committed meanwhile is in the
    log, in the queue, or both, and the seq of the last replayed event drops the repeats."""

    def __init__(
        self, db: Database, bus: EventBus, filter_: EventFilter, after_seq: int | None, size: int
    ) -> None:
        self._db, self._bus, self._filter = db, bus, filter_
        self._after = after_seq
        self._size = size
        self._stack = AsyncExitStack()
        self._sub: Subscription | None = None

    async def __aenter__(self) -> EventFeed:
        self._sub = await self._stack.enter_async_context(self._bus.subscribe(self._size))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    @property
    def dropped(self) -> asyncio.Event:
        assert self._sub is not None
        return self._sub.dropped

    async def events(self) -> AsyncIterator[Event]:
        sub = self._sub
        assert sub is not None, "use the feed inside `async with`"
        last = self._after
        if last is not None:
            while page := await events_after(self._db, last, self._filter.owner_id):
                for event in page:
                    if self._filter.matches(event):
                        yield event
                last = page[-1].seq
        while True:
            event = await _next(sub)
            if last is not None and event.seq <= last:
                continue  # replayed from the log already
            if self._filter.matches(event):
                yield event


async def _next(sub: Subscription) -> Event:
    while True:
        if sub.overflowed:
            raise FeedDropped()
        if not sub.queue.empty():
            return sub.queue.get_nowait()
        get = asyncio.ensure_future(sub.queue.get())
        drop = asyncio.ensure_future(sub.dropped.wait())
        try:
            await asyncio.wait({get, drop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drop.cancel()
            if not get.done():
                get.cancel()
        if get.done() and not get.cancelled():
            return get.result()
