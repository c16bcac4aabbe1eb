"""The in-process event bus: what happens to a message, for whoever waits on it.

Waiters (a ``POST /v1/chat`` holding its response for ``wait`` seconds; later, SSE streams) subscribe
to one message id and receive its events in order. Publishing never blocks the turn: each subscriber
has an unbounded queue and only lives as long as its request.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """One event of a message's turn: ``status``, ``token``, ``update`` or ``done``."""

    kind: str
    data: Any


class EventBus:
    """Fan-out of message events to in-process subscribers."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Queue[MessageEvent]]] = defaultdict(set)

    def publish(self, message_id: str, kind: str, data: Any = None) -> None:
        """Deliver an event to every current subscriber of ``message_id``."""
        queues = self._subscribers.get(message_id)
        if not queues:
            return
        event = MessageEvent(kind, data)
        for queue in queues:
            queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self, message_id: str) -> AsyncIterator[asyncio.Queue[MessageEvent]]:
        """A queue of the message's events from now on, removed when the block ends."""
        queue: asyncio.Queue[MessageEvent] = asyncio.Queue()
        self._subscribers[message_id].add(queue)
        try:
            yield queue
        finally:
            queues = self._subscribers.get(message_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._subscribers[message_id]

    @property
    def subscriber_count(self) -> int:
        """Live subscriptions (for tests and metrics)."""
        return sum(len(q) for q in self._subscribers.values())
