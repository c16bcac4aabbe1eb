"""Accepting messages (chat and resume), waiting for their outcome, cancelling: the message service,
free of HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from parley.core.auth import Answerer
from parley.core.errors import Conflict
from parley.core.events import RESYNC, EventBus, EventPublisher
from parley.core.ports import Runner, Store
from parley.core.records import MessageRecord
from parley.core.statuses import MessageKind, MessageStatus


async def submit_chat(
    *,
    store: Store,
    runner: Runner,
    user_id: str,
    session_id: str | None,
    content: str,
    reject_if_busy: bool,
    idempotency_key: str | None = None,
    answer_interrupts: bool = False,
    max_unfinished: int | None = None,
    answerer: Answerer | None = None,
    callback_url: str | None = None,
    graph: str | None = None,
) -> MessageRecord:
    """Record the user's message durably, then have its turn run. Returns the ``queued`` record.

    The row is committed before the runner hears of it, so a crash at any later point leaves a
    pending message that recovery picks up: nothing the API acknowledged is lost.
    """
    record = await store.accept_message(
        user_id=user_id,
        session_id=session_id,
        content=content,
        kind=MessageKind.CHAT,
        reject_if_busy=reject_if_busy,
        idempotency_key=idempotency_key,
        answer_interrupts=answer_interrupts,
        max_unfinished=max_unfinished,
        answerer=answerer,
        callback_url=callback_url,
        graph=graph,
    )
    return await _started(runner, record)


async def resume_session(
    *,
    store: Store,
    runner: Runner,
    session_id: str,
    user_id: str,
    operator: bool,
    interrupt_id: str,
    value: Any,
    idempotency_key: str | None = None,
    answerer: Answerer | None = None,
    reviews_only: bool = False,
    callback_url: str | None = None,
) -> MessageRecord:
    """Record the answer to a pending interrupt as a new ``queued`` message and have its turn run.

    The claim on the interrupt is atomic (see ``Store.accept_resume``): a stale, unknown or already
    answered interrupt is refused and nothing is stored. The claim records ``answerer`` — who the
    request authenticated as, never a name its body gave.
    """
    record = await store.accept_resume(
        session_id=session_id,
        user_id=user_id,
        operator=operator,
        interrupt_id=interrupt_id,
        value=value,
        idempotency_key=idempotency_key,
        answerer=answerer,
        reviews_only=reviews_only,
        callback_url=callback_url,
    )
    return await _started(runner, record)


async def _started(runner: Runner, record: MessageRecord) -> MessageRecord:
    # Only after the commit does the runner hear of it; an idempotent replay of an ended message
    # needs no turn. Should the notice be lost (a crash right here), the message is still pending in
    # storage, and recovery finds it.
    if not record.status.is_terminal:
        await runner.notify(record.session_id)
    return record


DONE_ONLY = frozenset({"done", RESYNC})


async def wait_for_terminal(
    *,
    store: Store,
    bus: EventBus,
    message: MessageRecord,
    timeout: float,  # noqa: ASYNC109 - a budget that ends in a value, not in an exception
) -> MessageRecord:
    """The message once terminal, or its latest state when ``timeout`` seconds have passed.

    Subscribes before re-reading the row, so a turn that ends between the read and the wait is still
    seen (its ``done`` event is already queued).
    """
    if timeout <= 0 or message.status.is_terminal:
        return message
    deadline = time.monotonic() + timeout
    async with bus.subscribe(message.message_id, kinds=DONE_ONLY) as events:
        current = await store.get_message(message_id=message.message_id, user_id=message.user_id)
        while not current.status.is_terminal:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                event = await asyncio.wait_for(events.get(), remaining)
            except TimeoutError:
                break
            if event.kind == "done" and isinstance(event.data, MessageRecord):
                return event.data
            # A ``done`` from another process only says that the message ended, and a ``resync`` that
            # the relay between processes reconnected and may have missed it: read the row.
            current = await store.get_message(message_id=message.message_id, user_id=message.user_id)
        else:
            return current
    return await store.get_message(message_id=message.message_id, user_id=message.user_id)


async def cancel_message(
    *,
    store: Store,
    runner: Runner,
    bus: EventBus,
    events: EventPublisher,
    message_id: str,
    user_id: str,
    wait: float,
) -> MessageRecord:
    """Cancel a queued or running turn; the cancelled record (or, if the turn is slow to stop, the
    latest state after ``wait`` seconds). ``Conflict`` if the message had already ended;
    ``ActionPerformed`` if its turn has performed an action.

    A queued message is cancelled in storage, atomically, so it can never start (a resume's interrupt is
    pending again). A running one is marked in storage — refused once the turn has performed an action,
    and from then on refusing it any — and cancelled in its runner; the turn then rolls the session's
    state back to where it started. Rolling back past an action would not undo it, and a resume would
    ask again about what was already done: hence the refusal.
    """
    record = await store.get_message(message_id=message_id, user_id=user_id)
    if record.status.is_terminal:
        raise Conflict(
            f"Message {message_id} has already ended ({record.status.value}).", status=record.status.value
        )
    cancelled = await store.cancel_if_queued(message_id=message_id)
    if cancelled is not None:
        events.publish_closing(cancelled)
        return cancelled
    if await store.mark_cancel_requested(message_id=message_id) is not None:
        await runner.cancel(message_id)
    final = await wait_for_terminal(store=store, bus=bus, message=record, timeout=wait)
    if final.status.is_terminal and final.status is not MessageStatus.CANCELLED:
        raise Conflict(
            f"Message {message_id} ended ({final.status.value}) before it could be cancelled.",
            status=final.status.value,
        )
    return final
