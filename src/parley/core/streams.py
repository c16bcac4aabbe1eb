"""Following one message's events for one reader: what is stored first, then what is published, with
no gap and no repeat — the logic behind ``GET /v1/messages/{id}/events``, free of HTTP.

Events reach the bus only once stored (``core/journal.py``), so the reader subscribes first and reads
storage second: every event is then in one or the other, or both (told apart by id). A live event whose
id is not the next one — the relay between processes dropped some, or the reader fell behind and got a
``resync`` — sends the reader back to storage, which has everything before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from parley.core.events import CLOSE, RESYNC, EventBus, MessageEvent
from parley.core.ports import Store
from parley.core.records import MessageRecord
from parley.core.redaction import interrupt_for_viewer

LIVE_LIMIT = 10_000
"""Events a slow reader may have waiting before it is sent back to storage."""
RECHECK_SECONDS = 30.0
"""A quiet stream looks at storage this often, in case an event could not be published (its process
died between storing and publishing it, or the journal could not store a ``done``)."""


async def follow_message(
    *,
    store: Store,
    bus: EventBus,
    message: MessageRecord,
    operator: bool,
    after: int = 0,
    recheck_seconds: float = RECHECK_SECONDS,
    live_limit: int = LIVE_LIMIT,
) -> AsyncIterator[MessageEvent]:
    """The events of ``message`` (already read as this viewer's) with ids above ``after``, ending with
    ``done``, whose data is the final ``MessageRecord``. Interrupts are as ``operator`` (or the end user)
    may see them. Ends at once if the reader has had ``done`` already, and without ``done`` on a ``close``
    (the process is stopping).
    """
    message_id = message.message_id
    last = after
    async with bus.subscribe(message_id, limit=live_limit) as live:
        batch = await store.read_events(message_id=message_id, after=last)
        check_end = not batch
        while True:
            for event in batch:
                if event.id is None or event.id <= last:
                    continue  # seen: from storage, then again live
                yield await _for_reader(store, message_id, event, operator=operator)
                last = event.id
                if event.kind == "done":
                    return
            if check_end:
                # Nothing stored past ``last``: the message may have ended with its events pruned (or a
                # ``done`` that was never stored); then only the outcome is left to give.
                current = await store.get_message(message_id=message_id, user_id="", operator=True)
                if current.status.is_terminal:
                    if current.event_seq > last:
                        yield MessageEvent(kind="done", data=current, id=max(current.event_seq, last + 1))
                    return
            try:
                event = await asyncio.wait_for(live.get(), recheck_seconds)
            except TimeoutError:
                batch, check_end = await store.read_events(message_id=message_id, after=last), True
                continue
            if event.kind == CLOSE:
                return
            if event.kind != RESYNC and event.id is not None and event.id <= last + 1:
                batch, check_end = [event], False
                continue
            # A gap, or events dropped on the way: storage has them all.
            bus.caught_up(message_id, live)
            batch = await store.read_events(message_id=message_id, after=last)
            check_end = not batch


async def _for_reader(store: Store, message_id: str, event: MessageEvent, *, operator: bool) -> MessageEvent:
    """The event as the reader may see it: ``done`` with the message record, interrupts redacted."""
    if event.kind == "done" and not isinstance(event.data, MessageRecord):
        record = await store.get_message(message_id=message_id, user_id="", operator=True)
        return MessageEvent(kind="done", data=record, id=event.id)
    if event.kind == "interrupt" and isinstance(event.data, dict):
        data: Any = interrupt_for_viewer(event.data, operator=operator)
        return MessageEvent(kind="interrupt", data=data, id=event.id)
    return event
