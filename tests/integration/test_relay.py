"""The event relay between processes (``runners/relay.py``), on a real PostgreSQL database: two relays in
one event loop stand for two processes — they share nothing but the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from parley.core.events import EventBus, MessageEvent
from parley.runners.relay import PostgresRelay
from tests.backends import Backend

pytestmark = pytest.mark.postgres_only


@pytest.fixture
async def relays(backend: Backend) -> AsyncIterator[tuple[EventBus, EventBus]]:
    """(the bus of a process that publishes, the bus of another that receives)."""
    assert backend.database_url is not None
    worker_bus, api_bus = EventBus(), EventBus()
    worker = PostgresRelay(url=backend.database_url, bus=worker_bus, receive_events=False)
    api = PostgresRelay(url=backend.database_url, bus=api_bus, forward_events=False)
    await api.start()
    await worker.start()
    try:
        yield worker_bus, api_bus
    finally:
        await worker.stop()
        await api.stop()


async def _until_done(events: asyncio.Queue[MessageEvent]) -> list[MessageEvent]:
    received: list[MessageEvent] = []
    while not received or received[-1].kind != "done":
        received.append(await asyncio.wait_for(events.get(), 10.0))
    return received


async def test_a_burst_of_events_reaches_another_process_whole_and_in_order(
    relays: tuple[EventBus, EventBus],
) -> None:
    """A turn's held tokens go out in a burst just before its ``done``; the relay sends what waits in
    one round trip, and must still deliver every event once, in order — equal tokens included, which
    PostgreSQL would fold into one within a transaction."""
    worker_bus, api_bus = relays
    async with api_bus.subscribe("m-1") as events:
        for i in range(300):
            # Runs of equal tokens, as a model writes them ("the", " ", "the" …).
            token = {"text": "the" if i % 3 else " ", "node": "agent"}
            worker_bus.publish("m-1", MessageEvent("token", token, id=i + 1))
        worker_bus.publish("m-1", MessageEvent("done", {"status": "completed"}, id=301))
        received = await _until_done(events)
    assert [e.kind for e in received] == ["token"] * 300 + ["done"]
    assert [e.data["text"] for e in received[:-1]] == ["the" if i % 3 else " " for i in range(300)]
    assert [e.id for e in received] == list(range(1, 302))  # ids cross with the events


async def test_events_of_several_messages_keep_their_order_per_message(
    relays: tuple[EventBus, EventBus],
) -> None:
    worker_bus, api_bus = relays
    async with api_bus.subscribe("m-a") as a_events, api_bus.subscribe("m-b") as b_events:
        for i in range(50):
            worker_bus.publish("m-a", MessageEvent("update", {"step": i}, id=i + 1))
            worker_bus.publish("m-b", MessageEvent("update", {"step": i}, id=i + 1))
        worker_bus.publish("m-a", MessageEvent("done", {"status": "completed"}, id=51))
        worker_bus.publish("m-b", MessageEvent("done", {"status": "failed"}, id=51))
        got_a, got_b = await _until_done(a_events), await _until_done(b_events)
    assert [e.data["step"] for e in got_a[:-1]] == list(range(50))
    assert [e.data["step"] for e in got_b[:-1]] == list(range(50))
    assert (got_a[-1].data, got_b[-1].data) == ({"status": "completed"}, {"status": "failed"})


async def test_events_are_packed_within_postgresqls_payload_limit(relays: tuple[EventBus, EventBus]) -> None:
    """Many events share a notification, but none may reach 8000 bytes (PostgreSQL refuses it, and the
    relay would retry it for ever); an event too large by itself arrives as a ``resync`` of its message,
    which sends the message's streams to storage for it."""
    worker_bus, api_bus = relays
    async with api_bus.subscribe("m-1") as events:
        for i in range(100):
            token = {"text": f"{i:04d}" + "x" * 996, "node": "agent"}
            worker_bus.publish("m-1", MessageEvent("token", token, id=i + 1))
        worker_bus.publish("m-1", MessageEvent("token", {"text": "y" * 10_000, "node": "agent"}, id=101))
        worker_bus.publish("m-1", MessageEvent("done", {"status": "completed"}, id=102))
        received = await _until_done(events)
    texts = [e.data["text"][:4] for e in received[:100]]
    assert texts == [f"{i:04d}" for i in range(100)]
    assert (received[100].kind, received[100].id) == ("resync", None)
    assert (received[101].data, received[101].id) == ({"status": "completed"}, 102)
