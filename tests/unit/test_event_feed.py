"""The WebSocket's feed on a real SQLite log and the real bus: replay then live at the seam."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dployr.events.bus import EventBus
from dployr.events.feed import EventFeed, EventFilter, FeedDropped, valid_pattern
from dployr.store import events, users
from dployr.store.db import Database
from dployr.store.events import Event


async def _open(tmp_path: Path) -> tuple[Database, EventBus]:
    db, bus = await Database.open(tmp_path / "d.db"), EventBus()
    db.publish = bus.publish  # as the app wires it: after COMMIT
    for name in ("a", "b"):  # events name their owner, a user
        user = await users.create_user(db, name=name, email=f"{name}@x.io", password_hash="x")
        async with db.transaction() as conn:  # short names for the tests to read
            await conn.execute("UPDATE users SET id = ? WHERE id = ?", (f"usr_{name}", user.id))
    return db, bus


async def _take(feed_events: object, count: int) -> list[Event]:
    it = feed_events.__aiter__()  # type: ignore[attr-defined]
    return [await asyncio.wait_for(it.__anext__(), 30) for _ in range(count)]


async def test_an_event_in_both_the_log_and_the_queue_comes_once(tmp_path: Path):
    db, bus = await _open(tmp_path)
    try:
        start = await events.append_event(db, "service.started", "usr_a", {"n": 0})
        async with EventFeed(db, bus, EventFilter(owner_id="usr_a"), start.seq, 16) as feed:
            # Committed after the feed subscribed and before it reads the log: in both.
            seam = await events.append_event(db, "service.started", "usr_a", {"n": 1})
            stream = feed.events()
            [first] = await _take(stream, 1)
            assert first.id == seam.id
            # The log is read out: the feed goes live, where the seam event is queued too.
            pending = asyncio.ensure_future(anext(stream))  # type: ignore[call-overload]
            await asyncio.sleep(0.2)
            later = await events.append_event(db, "service.stopped", "usr_a", {"n": 2})
            following = await asyncio.wait_for(pending, 30)
            assert following.id == later.id  # not the seam event a second time
            await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await db.close()


async def test_replay_pages_through_the_log_and_filters_owner_and_type(tmp_path: Path):
    db, bus = await _open(tmp_path)
    try:
        start = await events.append_event(db, "route.created", "usr_a", {})
        made = []
        for n in range(1200):  # more than one page of the log (500)
            owner = "usr_a" if n % 2 else "usr_b"
            kind = "deployment.created" if n % 3 else "route.deleted"
            made.append(await events.append_event(db, kind, owner, {"n": n}))
        wanted = [e for e in made if e.owner_id == "usr_a" and e.type.startswith("deployment.")]
        filter_ = EventFilter(("deployment.*",), "usr_a")
        async with EventFeed(db, bus, filter_, start.seq, 16) as feed:
            got = await _take(feed.events(), len(wanted))
        assert [e.id for e in got] == [e.id for e in wanted]
    finally:
        await db.close()


async def test_a_feed_that_falls_behind_is_told(tmp_path: Path):
    db, bus = await _open(tmp_path)
    try:
        async with EventFeed(db, bus, EventFilter(), None, 2) as feed:
            async with db.transaction() as conn:
                for n in range(3):  # three published at once, into a queue of two
                    await events.append(conn, "service.started", None, {"n": n})
            assert feed.dropped.is_set()
            with pytest.raises(FeedDropped):
                await _take(feed.events(), 1)
    finally:
        await db.close()


def test_patterns_and_matching():
    assert all(map(valid_pattern, ["*", "deployment.*", "service.started", "route.created"]))
    assert not any(map(valid_pattern, ["", "a.*.b", "Route.x", "x.", ".x", "x y", "x" * 101]))
    event = Event(1, "evt_1", "deployment.failed", "usr_a", "2026-01-01T00:00:00Z", {})
    assert EventFilter(("deployment.*",), "usr_a").matches(event)
    assert EventFilter(("deployment.failed",), None).matches(event)
    assert not EventFilter(("deploy.*",), None).matches(event)
    assert not EventFilter(("deployment",), None).matches(event)
    assert not EventFilter((), "usr_b").matches(event)
    assert EventFilter().matches(event)
