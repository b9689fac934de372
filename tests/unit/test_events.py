"""The event log (persisted in order with its change) and the in-process bus."""

import asyncio

from dployr.events.bus import EventBus
from dployr.store import events
from dployr.store.db import Database


async def test_events_commit_with_their_change_and_read_in_order(tmp_path):
    db = await Database.open(tmp_path / "d.db")
    try:
        async with db.transaction() as conn:
            first = await events.append(conn, "deployment.created", None, {"n": 1})
            second = await events.append(conn, "deployment.progress", None, {"n": 2})
        try:
            async with db.transaction() as conn:
                await events.append(conn, "deployment.failed", None, {"n": 3})
                raise RuntimeError("the change failed")
        except RuntimeError:
            pass
        listed = await events.events_after(db, 0, None)
        assert [e.id for e in listed] == [first.id, second.id]
        assert listed[0].public() == {
            "id": first.id,
            "type": "deployment.created",
            "created_at": first.created_at,
            "data": {"n": 1},
        }
        assert await events.seq_of(db, first.id) == first.seq
        assert [e.id for e in await events.events_after(db, first.seq, None)] == [second.id]
    finally:
        await db.close()


async def test_bus_fans_out_and_drops_a_slow_subscriber():
    bus = EventBus(maxsize=2)
    event = events.Event(1, "evt_1", "t", None, "2026-01-01T00:00:00Z", {})
    async with bus.subscribe() as fast, bus.subscribe() as slow:
        for _ in range(2):
            bus.publish(event)  # slow keeps them all: after two it is full
            assert await asyncio.wait_for(fast.next(), 1) == event
        assert not slow.overflowed
        bus.publish(event)
        assert slow.overflowed and not fast.overflowed and bus.subscriber_count == 1
    assert bus.subscriber_count == 0
