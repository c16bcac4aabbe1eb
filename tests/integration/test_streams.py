"""Following a message's events (``core/streams.py``) with the real store and bus: events that never came
live — dropped by the relay, or by a reader too slow to keep up — are read from storage, in order, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from parley.core.events import RESYNC, MessageEvent
from parley.core.records import MessageRecord
from parley.core.statuses import MessageKind
from parley.core.streams import follow_message
from tests.conftest import AppHarness
from tests.waiting import wait_until_async


async def _message(h: AppHarness) -> MessageRecord:
    # Accepted straight in storage: no runner hears of it, so only this test writes its events.
    return await h.services.store.accept_message(
        user_id="alice", session_id=None, content="hi", kind=MessageKind.CHAT, reject_if_busy=False
    )


async def _follow(h: AppHarness, record: MessageRecord, **options: Any) -> asyncio.Task[list[MessageEvent]]:
    async def collect() -> list[MessageEvent]:
        received = []
        async for event in follow_message(
            store=h.services.store, bus=h.services.bus, message=record, operator=False, **options
        ):
            received.append(event)
        return received

    task = asyncio.create_task(collect())

    async def subscribed() -> bool:
        return h.services.bus.subscribers(record.message_id) == 1

    await wait_until_async(subscribed, what="the stream to subscribe")
    return task


async def _store(h: AppHarness, record: MessageRecord, *texts: str) -> int:
    last = await h.services.store.append_events(
        message_id=record.message_id, events=[("token", {"text": t, "node": "agent"}) for t in texts]
    )
    assert last is not None
    return last


async def _finish(h: AppHarness, record: MessageRecord) -> None:
    final = await h.services.store.finish(message_id=record.message_id, status=record.status.COMPLETED)
    assert final is not None
    h.services.journal.publish_closing(final)


async def test_events_missed_live_are_read_from_storage_in_order(harness: AppHarness) -> None:
    record = await _message(harness)
    stream = await _follow(harness, record)
    # Stored but never published here (the relay lost them): the next event that arrives has a later id.
    await _store(harness, record, "a", "b")
    last = await _store(harness, record, "c")
    harness.services.bus.deliver(
        record.message_id, MessageEvent("token", {"text": "c", "node": "agent"}, id=last)
    )
    await _finish(harness, record)
    received = await asyncio.wait_for(stream, 10)
    assert [(e.id, e.kind) for e in received] == [(1, "token"), (2, "token"), (3, "token"), (4, "done")]
    assert [e.data["text"] for e in received[:3]] == ["a", "b", "c"]
    assert isinstance(received[-1].data, MessageRecord)


async def test_a_resync_sends_the_stream_to_storage(harness: AppHarness) -> None:
    record = await _message(harness)
    stream = await _follow(harness, record)
    await _store(harness, record, "a", "b")
    harness.services.bus.broadcast(RESYNC)  # as after the relay's listening connection came back
    await _finish(harness, record)
    received = await asyncio.wait_for(stream, 10)
    assert [e.id for e in received] == [1, 2, 3]
    assert [e.kind for e in received] == ["token", "token", "done"]


async def test_a_reader_that_falls_behind_gets_every_event_once(harness: AppHarness) -> None:
    record = await _message(harness)
    stream = await _follow(harness, record, live_limit=3)
    journal = harness.services.journal
    # A subscriber with the stream's limit, never read: it shows that the bus did drop live events here,
    # so the stream below got them from storage, not from its queue.
    async with harness.services.bus.subscribe(record.message_id, limit=3) as witness:
        for i in range(50):  # published faster than the reader reads: past 3 waiting, live ones are dropped
            journal.publish(record.message_id, "token", {"text": str(i), "node": "agent"})
        await journal.flush(record.message_id)
        dropped = [witness.get_nowait() for _ in range(witness.qsize())]
    assert [e.kind for e in dropped] == ["token", "token", "token", RESYNC]
    await _finish(harness, record)
    received = await asyncio.wait_for(stream, 10)
    assert [e.id for e in received] == list(range(1, 52))
    assert [e.data["text"] for e in received[:-1]] == [str(i) for i in range(50)]


async def test_a_stream_of_an_ended_message_without_stored_events_gives_its_outcome(
    harness: AppHarness,
) -> None:
    record = await _message(harness)
    await _store(harness, record, "a")
    await _finish(harness, record)
    pruned = await harness.services.store.prune_events(finished_before=datetime.now(UTC) + timedelta(days=1))
    assert pruned == 2
    stream = follow_message(
        store=harness.services.store, bus=harness.services.bus, message=record, operator=False
    )
    received = [event async for event in stream]
    assert [(e.id, e.kind) for e in received] == [(2, "done")]
    ended = follow_message(
        store=harness.services.store, bus=harness.services.bus, message=record, operator=False, after=2
    )
    assert [event async for event in ended] == []
