"""The event journal: each message's events are stored, numbered, then published.

A turn (and a cancel) calls ``publish``, which never blocks: the event waits in a queue that one writer
task empties in batches — the events of one message in one ``Store.append_events`` call, those of several
messages in one transaction (``Store.append_events_of``). Only once an event is stored does it reach the
bus, with its id. So a stream
that reads storage and then follows the bus sees every event exactly once, whatever process appended
it; a crash can lose events that nobody has seen, never one a client has; and an id is never given
twice, even to the attempt that runs after a crash (``storage/events.py``).

Stored events are kept for ``retention_seconds`` after their message ended (the process that runs turns
prunes them); after that a stream of the message gets only its ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from parley.core.errors import first_line
from parley.core.events import EventBus, MessageEvent, closing_events
from parley.core.ports import Store
from parley.core.records import MessageRecord
from parley.core.retry import backoff_seconds, is_transient

logger = logging.getLogger(__name__)

_MAX_BATCH = 1000
_RETRY_BASE_SECONDS = 0.1
_RETRY_CAP_SECONDS = 5.0


def stored_form(data: Any) -> Any:
    """What of an event's data is stored and crosses processes: a record becomes its status (readers read
    the message itself, as their viewer may see it)."""
    if isinstance(data, MessageRecord):
        return {"status": data.status.value}
    return data


class EventJournal:
    """Stores events then publishes them on the bus (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        retention_seconds: float = 86_400.0,
        prune: bool = False,
    ) -> None:
        self._store = store
        self._bus = bus
        self._retention = retention_seconds
        self._prune = prune
        self._queue: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()
        # Events not yet stored, by message, and who waits for a message's to be (``flush``).
        self._unstored: dict[str, int] = {}
        self._flushers: dict[str, list[asyncio.Future[None]]] = {}
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def bus(self) -> EventBus:
        """The bus stored events are published on."""
        return self._bus

    def publish(self, message_id: str, kind: str, data: Any = None) -> None:
        """Store the event, then publish it; returns at once."""
        self._idle.clear()
        self._unstored[message_id] = self._unstored.get(message_id, 0) + 1
        self._queue.put_nowait((message_id, kind, data))

    async def flush(self, message_id: str, *, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Wait until the events of ``message_id`` published so far are stored, or storing them failed
        once: a turn does before storing its end, whose events must come after them. With storage
        failing, storing the end would fail alike, and the turn is retried."""
        if not self._unstored.get(message_id) or not self._tasks:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flushers.setdefault(message_id, []).append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            logger.warning("events of message %s still not stored after %.0fs", message_id, timeout)

    def publish_closing(self, record: MessageRecord) -> None:
        """Publish the events ``Store.finish`` (or ``cancel_if_queued``) stored with ``record``'s end: the
        ``done`` carries the record itself to this process's subscribers."""
        events = closing_events(status=record.status, interrupt=record.interrupt, error=record.error)
        first = record.event_seq - len(events) + 1
        for offset, (kind, data) in enumerate(events):
            event = MessageEvent(kind=kind, data=record if kind == "done" else data, id=first + offset)
            self._bus.publish(record.message_id, event)

    async def start(self) -> None:
        """Start the writer (and, with ``prune``, the pruning of old events)."""
        self._tasks.append(asyncio.create_task(self._write_forever(), name="parley-journal"))
        if self._prune:
            self._tasks.append(asyncio.create_task(self._prune_forever(), name="parley-journal-prune"))

    async def drain(self) -> None:
        """Wait until every event published so far is stored and published."""
        while not (self._queue.empty() and self._in_flight == 0):
            self._idle.clear()
            await self._idle.wait()

    async def stop(self, *, grace: float = 5.0) -> None:
        """Store what is queued (for at most ``grace`` seconds), then stop."""
        if self._tasks and not self._tasks[0].done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for waiters in self._flushers.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._flushers.clear()
        if not self._queue.empty():
            logger.warning("event journal stopped with %d events not stored", self._queue.qsize())

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._in_flight = len(batch)
            by_message: dict[str, list[tuple[str, Any]]] = {}
            for message_id, kind, data in batch:
                by_message.setdefault(message_id, []).append((kind, data))
            try:
                if len(by_message) == 1:
                    await self._append(*next(iter(by_message.items())))
                else:
                    await self._append_all(by_message)
            finally:
                self._in_flight = 0
                for message_id, events in by_message.items():
                    self._stored(message_id, len(events))
                if self._queue.empty():
                    self._idle.set()

    def _stored(self, message_id: str, count: int) -> None:
        left = self._unstored.get(message_id, 0) - count
        if left > 0:
            self._unstored[message_id] = left
            return
        self._unstored.pop(message_id, None)
        self._release_flushers(message_id)

    def _release_flushers(self, message_id: str) -> None:
        for waiter in self._flushers.pop(message_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def _append(self, message_id: str, events: Sequence[tuple[str, Any]]) -> None:
        stored = [(kind, stored_form(data)) for kind, data in events]
        attempt = 0
        while True:
            try:
                last = await self._store.append_events(message_id=message_id, events=stored)
                break
            except Exception as exc:
                if not is_transient(exc):
                    logger.exception("could not store %d events of message %s", len(events), message_id)
                    return
                # Whoever waits for these to be stored goes on: storing the turn's end is likely to fail
                # alike, and the turn is then retried (these are stored when storage answers again).
                self._release_flushers(message_id)
                attempt += 1
                delay = backoff_seconds(attempt, base=_RETRY_BASE_SECONDS, cap=_RETRY_CAP_SECONDS)
                logger.warning(
                    "could not store events of message %s (%s); retrying in %.1fs",
                    message_id,
                    first_line(exc),
                    delay,
                )
                await asyncio.sleep(delay)
        self._publish_stored(message_id, events, last)

    async def _append_all(self, by_message: dict[str, list[tuple[str, Any]]]) -> None:
        """The events of several messages in one transaction: one commit for the batch instead of one
        per message, which under many concurrent turns was most of what storing a token cost (SQLite)
        or waited for (PostgreSQL's flush). If that fails, message by message as ``_append`` does, each
        retried on its own (nothing of the failed transaction was stored)."""
        stored = {m: [(kind, stored_form(data)) for kind, data in events] for m, events in by_message.items()}
        try:
            lasts = await self._store.append_events_of(events=stored)
        except Exception as exc:
            logger.info("storing events of %d messages together failed (%s)", len(stored), first_line(exc))
            await asyncio.gather(*(self._append(m, events) for m, events in by_message.items()))
            return
        for message_id, last in lasts.items():
            self._publish_stored(message_id, by_message[message_id], last)

    def _publish_stored(self, message_id: str, events: Sequence[tuple[str, Any]], last: int | None) -> None:
        if last is None:
            return  # the message is gone (its session was deleted): nobody can stream it
        first = last - len(events) + 1
        for offset, (kind, data) in enumerate(events):
            self._bus.publish(message_id, MessageEvent(kind=kind, data=data, id=first + offset))

    async def _prune_forever(self) -> None:
        # Often enough that one pass deletes little; rarely enough to cost nothing.
        interval = min(max(self._retention / 10, 1.0), 300.0)
        while True:
            await asyncio.sleep(interval)
            cutoff = datetime.now(UTC) - timedelta(seconds=self._retention)
            try:
                pruned = await self._store.prune_events(finished_before=cutoff)
            except Exception as exc:
                logger.warning("could not prune old message events (%s)", first_line(exc))
                continue
            if pruned:
                logger.info("pruned %d stored event rows of messages ended before %s", pruned, cutoff)
