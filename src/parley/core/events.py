"""The in-process event bus: what happens to a message, for whoever waits on it.

Waiters (a ``POST /v1/chat`` holding its response for ``wait`` seconds, an event stream) subscribe to
one message id and receive its events in order. Events reach the bus from the journal
(``core/journal.py``) once stored, carrying their id; ``resync`` (no id) tells a subscriber that events
may have been missed — the relay between processes reconnected, or the subscriber fell too far
behind — and that storage has them. Publishing never blocks the turn.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from parley.core.records import MessageRecord
from parley.core.statuses import MessageStatus

RESYNC = "resync"
"""Events may have been missed: storage has them."""
CLOSE = "close"
"""The process is stopping: a reader ends its stream (its client reconnects, to another instance)."""


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """One event of a message's turn: ``status``, ``token``, ``update``, ``interrupt``, ``error``,
    ``done`` — or ``resync``. ``id`` is its place among the message's stored events (None for
    ``resync``)."""

    kind: str
    data: Any = None
    id: int | None = None


def closing_events(
    *, status: MessageStatus, interrupt: list[dict[str, Any]] | None, error: dict[str, Any] | None
) -> list[tuple[str, Any]]:
    """The events a message ends with, stored with its terminal status in one transaction
    (``Store.finish``, ``Store.cancel_if_queued``): one ``interrupt`` per pending interrupt, ``error`` if
    it failed, and ``done`` — so a message that has ended always has its ``done`` stored."""
    events: list[tuple[str, Any]] = [("interrupt", pending) for pending in interrupt or ()]
    if status is MessageStatus.FAILED and error is not None:
        events.append(("error", error))
    events.append(("done", {"status": status.value}))
    return events


class EventPublisher(Protocol):
    """Where a turn's events go (the journal: stored, then published)."""

    def publish(self, message_id: str, kind: str, data: Any = None) -> None:
        """Record an event of ``message_id``; never blocks."""

    async def flush(self, message_id: str) -> None:
        """Wait until the events of ``message_id`` published so far are stored."""

    def publish_closing(self, record: MessageRecord) -> None:
        """Publish the closing events storage stored with ``record``'s terminal status."""


EventTap = Callable[[str, MessageEvent], None]
"""Sees every event published here: ``(message_id, event)``. Must not block."""


@dataclass(slots=True)
class _Subscriber:
    kinds: frozenset[str] | None
    limit: int | None
    overflowed: bool = field(default=False)


class EventBus:
    """Fan-out of message events to in-process subscribers.

    Across processes (API instances and workers in the scale-out mode) a relay taps what is published
    here and delivers what other processes published (``runners/relay.py``); the bus itself stays
    in-process and knows nothing of how.
    """

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, dict[asyncio.Queue[MessageEvent], _Subscriber]] = defaultdict(
            dict
        )
        self._taps: list[EventTap] = []

    def add_tap(self, tap: EventTap) -> None:
        """Have ``tap`` see every event published from now on (not those ``deliver``ed)."""
        self._taps.append(tap)

    def publish(self, message_id: str, event: MessageEvent) -> None:
        """Deliver an event to this process's subscribers of ``message_id``, and to the taps."""
        for tap in self._taps:
            tap(message_id, event)
        self.deliver(message_id, event)

    def broadcast(self, kind: str) -> None:
        """An event for every subscriber of every message (say, ``resync`` after a relay reconnected)."""
        for message_id in list(self._subscribers):
            self.deliver(message_id, MessageEvent(kind))

    def deliver(self, message_id: str, event: MessageEvent) -> None:
        """Hand an event to this process's subscribers only (one that came from another process)."""
        queues = self._subscribers.get(message_id)
        if not queues:
            return
        for queue, subscriber in queues.items():
            if subscriber.kinds is not None and event.kind not in subscriber.kinds:
                continue
            if subscriber.limit is not None and queue.qsize() >= subscriber.limit:
                # A subscriber that cannot keep up (a slow client) is not allowed to hold memory without
                # bound: it gets one ``resync`` and reads what it missed from storage.
                if not subscriber.overflowed:
                    subscriber.overflowed = True
                    queue.put_nowait(MessageEvent(RESYNC))
                continue
            queue.put_nowait(event)

    def subscribers(self, message_id: str | None = None) -> int:
        """How many subscriptions this process holds (to ``message_id``, or in all)."""
        if message_id is not None:
            return len(self._subscribers.get(message_id, ()))
        return sum(len(queues) for queues in self._subscribers.values())

    def caught_up(self, message_id: str, queue: asyncio.Queue[MessageEvent]) -> None:
        """A subscriber that overflowed has read storage: deliver to it again."""
        subscriber = self._subscribers.get(message_id, {}).get(queue)
        if subscriber is not None:
            subscriber.overflowed = False

    @asynccontextmanager
    async def subscribe(
        self, message_id: str, *, kinds: frozenset[str] | None = None, limit: int | None = None
    ) -> AsyncIterator[asyncio.Queue[MessageEvent]]:
        """A queue of the message's events (of ``kinds``, or all) from now on, removed when the block ends.

        A waiter that only needs the outcome asks for ``done`` alone: under load, not being woken for
        every token is measurable. With a ``limit``, events past it are dropped for a ``resync`` (see
        ``deliver``).
        """
        queue: asyncio.Queue[MessageEvent] = asyncio.Queue()
        self._subscribers[message_id][queue] = _Subscriber(kinds=kinds, limit=limit)
        try:
            yield queue
        finally:
            queues = self._subscribers.get(message_id)
            if queues is not None:
                queues.pop(queue, None)
                if not queues:
                    del self._subscribers[message_id]
