"""Events and cancels between processes, through PostgreSQL's LISTEN/NOTIFY.

In the scale-out mode a turn runs in a worker while the request that waits for it is held by an API
instance, possibly another one than the instance that accepted the message. The relay forwards what is
published on this process's ``EventBus`` as notifications on ``parley_events`` and delivers the
notifications of other processes to local subscribers; cancels travel on ``parley_control``.

A notification is a hint, not the record: events are stored before they are published (``core/journal.py``)
and carry their id, ``done`` carries only the status (the waiter reads the row), an event too large to
notify travels as a ``resync`` for its message, and one missed while the listening connection was down is
made good by a ``resync`` to every local subscriber after it reconnects. Storage, not the relay, is what
holds the truth.

Events waiting to be sent go out together: as many as fit in one notification (a JSON list), and the
notifications in one round trip. A turn publishes its held tokens in a burst just before its ``done``
(``core/usage.py``); sent one at a time they held the ``done`` — and the request waiting for it — one
round trip per token, and every API instance received one notification per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from parley.core.errors import first_line
from parley.core.events import RESYNC, EventBus, MessageEvent
from parley.core.journal import stored_form

logger = logging.getLogger(__name__)

EVENTS_CHANNEL = "parley_events"
CONTROL_CHANNEL = "parley_control"
# PostgreSQL refuses payloads of 8000 bytes or more; events are far smaller, but a token could be long.
_MAX_PAYLOAD_BYTES = 7900
# What a notification adds around its events: {"o": origin, "n": sequence, "e": [...]}.
_ENVELOPE_BYTES = 64
_RECONNECT_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
# Notifications sent in one round trip at most (one transaction: kept small).
_MAX_BATCH = 500
_NOTIFY = "SELECT pg_notify(%s, %s)"

CancelHandler = Callable[[str], Awaitable[None]]


class PostgresRelay:
    """One listening connection and one sending connection per process (see the module docstring)."""

    def __init__(
        self,
        *,
        url: str,
        bus: EventBus,
        forward_events: bool = True,
        receive_events: bool = True,
        on_cancel: CancelHandler | None = None,
    ) -> None:
        self._url = url
        self._bus = bus
        self._forward = forward_events
        self._receive = receive_events
        self._on_cancel = on_cancel
        self._origin = uuid.uuid4().hex[:12]
        # PostgreSQL delivers a payload once per transaction however often it was sent in it, and a batch
        # is one transaction: a sequence number keeps equal notifications apart.
        self._sequence = itertools.count()
        # (channel, one event as JSON): packed into notifications when sent.
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self._all_sent = asyncio.Event()  # nothing waits in the outbox or in a batch being sent
        self._all_sent.set()

    async def start(self) -> None:
        """Start listening (returns once the first LISTEN is in place) and forwarding."""
        if self._forward:
            self._bus.add_tap(self._tap)
        channels = ([EVENTS_CHANNEL] if self._receive else []) + (
            [CONTROL_CHANNEL] if self._on_cancel else []
        )
        self._tasks.append(asyncio.create_task(self._send_forever(), name="parley-relay-send"))
        if channels:
            self._tasks.append(
                asyncio.create_task(self._listen_forever(channels), name="parley-relay-listen")
            )
            try:
                await asyncio.wait_for(self._listening.wait(), 10.0)
            except TimeoutError:
                logger.warning("the event relay is not listening yet; it keeps trying")

    async def stop(self, *, grace: float = 2.0) -> None:
        """Send what is waiting (for at most ``grace`` seconds: a process stopping has just published its
        turns' last events), then stop both loops; what is still unsent is dropped (storage has it)."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_sent.wait(), grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def send_cancel(self, message_id: str) -> None:
        """Ask whichever process runs ``message_id``'s turn to cancel it."""
        self._all_sent.clear()
        self._outbox.put_nowait((CONTROL_CHANNEL, json.dumps({"m": message_id})))

    def _tap(self, message_id: str, event: MessageEvent) -> None:
        sent = json.dumps({"m": message_id, "k": event.kind, "d": stored_form(event.data), "i": event.id})
        if len(sent) > _MAX_PAYLOAD_BYTES - _ENVELOPE_BYTES:  # ASCII: json.dumps escapes the rest
            # Too large to notify: the receivers' subscribers read it from storage, which has it.
            sent = json.dumps({"m": message_id, "k": RESYNC})
        self._all_sent.clear()
        self._outbox.put_nowait((EVENTS_CHANNEL, sent))

    def _pack(self, batch: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The events of ``batch`` as ``(channel, payload)`` notifications, in order: consecutive events
        of a channel share a notification as long as it stays under PostgreSQL's limit."""
        notifications: list[tuple[str, str]] = []
        channel = ""
        events: list[str] = []
        size = _ENVELOPE_BYTES
        for event_channel, event in [*batch, ("", "")]:  # the last, empty, sends what is left
            if events and (event_channel != channel or size + len(event) + 2 > _MAX_PAYLOAD_BYTES):
                envelope = f'{{"o": "{self._origin}", "n": {next(self._sequence)}, "e": ['
                notifications.append((channel, envelope + ", ".join(events) + "]}"))
                events, size = [], _ENVELOPE_BYTES
            channel = event_channel
            events.append(event)
            size += len(event) + 2  # and ", " before the next
        return notifications

    async def _send_forever(self) -> None:
        attempt = 0
        batch: list[tuple[str, str]] = []
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    attempt = 0
                    while True:
                        if not batch:
                            batch.append(await self._outbox.get())
                        while len(batch) < _MAX_BATCH and not self._outbox.empty():
                            batch.append(self._outbox.get_nowait())
                        await _notify(conn, self._pack(batch))
                        batch = []
                        if self._outbox.empty():
                            self._all_sent.set()
            except psycopg.Error as exc:
                delay = _RECONNECT_SECONDS[min(attempt, len(_RECONNECT_SECONDS) - 1)]
                attempt += 1
                logger.warning("event relay: cannot send (%s); retrying in %.1fs", first_line(exc), delay)
                await asyncio.sleep(delay)

    async def _listen_forever(self, channels: list[str]) -> None:
        attempt = 0
        connected_before = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    for channel in channels:
                        await conn.execute(f"LISTEN {channel}".encode())
                    self._listening.set()
                    attempt = 0
                    if connected_before:
                        # Whatever was notified while we were away is lost: waiters look at their rows.
                        self._bus.broadcast("resync")
                    connected_before = True
                    while True:
                        async for notify in conn.notifies(timeout=5.0):
                            await self._received(notify.channel, notify.payload)
                        await conn.execute("SELECT 1")  # a dead connection shows up here
            except psycopg.Error as exc:
                delay = _RECONNECT_SECONDS[min(attempt, len(_RECONNECT_SECONDS) - 1)]
                attempt += 1
                logger.warning(
                    "event relay: listening failed (%s); reconnecting in %.1fs", first_line(exc), delay
                )
                await asyncio.sleep(delay)

    async def _received(self, channel: str, payload: str) -> None:
        try:
            notification = json.loads(payload)
        except ValueError:
            return
        if not isinstance(notification, dict) or notification.get("o") == self._origin:
            return  # ours: already delivered here
        events = notification.get("e")
        for event in events if isinstance(events, list) else []:
            if not isinstance(event, dict):
                continue
            message_id = str(event.get("m", ""))
            if channel == CONTROL_CHANNEL and self._on_cancel is not None:
                await self._on_cancel(message_id)
            elif channel == EVENTS_CHANNEL:
                event_id = event.get("i")
                self._bus.deliver(
                    message_id,
                    MessageEvent(
                        kind=str(event.get("k", "")),
                        data=event.get("d"),
                        id=event_id if isinstance(event_id, int) else None,
                    ),
                )


async def _notify(conn: psycopg.AsyncConnection[Any], batch: list[tuple[str, str]]) -> None:
    """Send ``(channel, payload)`` notifications in order, in one round trip (pipelined statements)."""
    if not batch:
        return
    if len(batch) == 1:
        await conn.execute(_NOTIFY, batch[0])
        return
    async with conn.pipeline():
        for notification in batch:
            await conn.execute(_NOTIFY, notification)
