"""The in-process event bus: what happens to a message, for whoever waits on it.

Waiters (a ``POST /v1/chat`` holding its response for ``wait`` seconds; later, SSE streams) subscribe
to one message id and receive its events in order. Publishing never blocks the turn: each subscriber
has an unbounded queue and only lives as long as its request.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """One event of a message's turn: ``status``, ``token``, ``update`` or ``done``."""

    kind: str
    data: Any


EventTap = Callable[[str, str, Any], None]
"""Sees every event published here: ``(message_id, kind, data)``. Must not block."""


class EventBus:
    """Fan-out of message events to in-process subscribers.

    Across processes (API instances and workers in the scale-out mode) a relay taps what is published
    here and delivers what other processes published (``runners/relay.py``); the bus itself stays
    in-process and knows nothing of how.
    """

    def __init__(self) -> None:
        # message id -> queue -> the event kinds it wants (None: all)
        self._subscribers: defaultdict[str, dict[asyncio.Queue[MessageEvent], frozenset[str] | None]] = (
            defaultdict(dict)
        )
        self._taps: list[EventTap] = []

    def add_tap(self, tap: EventTap) -> None:
        """Have ``tap`` see every event published from now on (not those ``deliver``ed)."""
        self._taps.append(tap)

    def publish(self, message_id: str, kind: str, data: Any = None) -> None:
        """Deliver an event to every current subscriber of ``message_id`` that wants its kind, and to the
        taps."""
        for tap in self._taps:
            tap(message_id, kind, data)
        self.deliver(message_id, kind, data)

    def broadcast(self, kind: str) -> None:
        """An event for every subscriber of every message (say, ``resync`` after a relay reconnected)."""
        for message_id in list(self._subscribers):
            self.deliver(message_id, kind)

    def deliver(self, message_id: str, kind: str, data: Any = None) -> None:
        """Hand an event to this process's subscribers only (one that came from another process)."""
        queues = self._subscribers.get(message_id)
        if not queues:
            return
        event = MessageEvent(kind, data)
        for queue, kinds in queues.items():
            if kinds is None or kind in kinds:
                queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(
        self, message_id: str, *, kinds: frozenset[str] | None = None
    ) -> AsyncIterator[asyncio.Queue[MessageEvent]]:
        """A queue of the message's events (of ``kinds``, or all) from now on, removed when the block ends.

        A waiter that only needs the outcome asks for ``done`` alone: under load, not being woken for
        every token is measurable.
        """
        queue: asyncio.Queue[MessageEvent] = asyncio.Queue()
        self._subscribers[message_id][queue] = kinds
        try:
            yield queue
        finally:
            queues = self._subscribers.get(message_id)
            if queues is not None:
                queues.pop(queue, None)
                if not queues:
                    del self._subscribers[message_id]
