"""Answering interrupts: the resume service, free of HTTP."""

from __future__ import annotations

from typing import Any

from parley.runners.base import Runner
from parley.storage.records import MessageRecord
from parley.storage.store import Store


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
) -> MessageRecord:
    """Record the answer to a pending interrupt as a new ``queued`` message and have its turn run.

    The claim on the interrupt is atomic (see ``Store.accept_resume``): a stale, unknown or already
    answered interrupt is refused and nothing is stored.
    """
    record = await store.accept_resume(
        session_id=session_id,
        user_id=user_id,
        operator=operator,
        interrupt_id=interrupt_id,
        value=value,
        idempotency_key=idempotency_key,
    )
    if not record.status.is_terminal:
        runner.notify(record.session_id)
    return record
