"""The ``parley_messages`` rows: acceptance, the pending queue of a session, status transitions.

Every transition is one guarded ``UPDATE … WHERE status IN (…)``: it happens once, whichever process
tries it, and the caller learns from the row it gets back (or not) whether it did.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from parley.core.errors import ActionPerformed, InvalidInput, TurnCancelled
from parley.core.events import closing_events
from parley.core.records import Backlog, MessageRecord
from parley.core.statuses import CANCELLED_ERROR, MessageKind, MessageStatus
from parley.storage import message_events, rows, webhooks
from parley.storage.db import Tx


def request_hash(*parts: str | None) -> str:
    """What an idempotent repeat must match: the same session, content and kind."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


async def replay(tx: Tx, *, user_id: str, key: str, request_hash: str) -> MessageRecord | None:
    """The message an earlier request with this idempotency key created; ``InvalidInput`` if that
    request was a different one."""
    earlier = await tx.one(
        f"SELECT {rows.MESSAGE_COLUMNS}, request_hash FROM parley_messages "
        "WHERE user_id = ? AND idempotency_key = ?",
        (user_id, key),
    )
    if earlier is None:
        return None
    if earlier["request_hash"] != request_hash:
        raise InvalidInput("was used before with a different request", loc=["header", "Idempotency-Key"])
    return rows.message(earlier)


async def first_pending_id(tx: Tx, *, session_id: str) -> str | None:
    """The id of the session's oldest message not yet in a terminal status."""
    row = await tx.one(
        f"SELECT message_id FROM parley_messages WHERE session_id = ? AND status IN {rows.PENDING_SQL} "
        "ORDER BY seq LIMIT 1",
        (session_id,),
    )
    return None if row is None else str(row["message_id"])


async def unfinished_count(tx: Tx, *, session_id: str, limit: int) -> int:
    """How many of the session's messages are not yet ended, counted up to ``limit`` (through the index of
    pending messages: the cost is bounded by the limit, not by the session's length)."""
    row = await tx.one(
        "SELECT COUNT(*) AS n FROM (SELECT 1 FROM parley_messages WHERE session_id = ? "
        f"AND status IN {rows.PENDING_SQL} ORDER BY seq LIMIT ?) AS unfinished",
        (session_id, limit),
    )
    return 0 if row is None else int(row["n"])


async def insert(
    tx: Tx,
    *,
    session_id: str,
    user_id: str,
    kind: MessageKind,
    content: str | None,
    resume: str | None,
    idempotency_key: str | None,
    request_hash: str,
    actor: str | None,
    now: str,
    message_id: str | None = None,
    callback_url: str | None = None,
) -> MessageRecord:
    """A new ``queued`` message (its ``seq`` is its place in the arrival order)."""
    row = await tx.one(
        "INSERT INTO parley_messages (message_id, session_id, user_id, kind, content, resume, status, "
        "created_at, updated_at, idempotency_key, request_hash, actor, callback_url) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {rows.MESSAGE_COLUMNS}",
        (
            message_id or str(uuid.uuid4()),
            session_id,
            user_id,
            kind.value,
            content,
            resume,
            MessageStatus.QUEUED.value,
            now,
            now,
            idempotency_key,
            request_hash,
            actor,
            callback_url,
        ),
    )
    assert row is not None
    return rows.message(row)


async def get(tx: Tx, *, message_id: str, user_id: str | None) -> MessageRecord | None:
    """The message; with ``user_id``, only if it is that user's."""
    sql = f"SELECT {rows.MESSAGE_COLUMNS} FROM parley_messages WHERE message_id = ?"
    params: tuple[str, ...] = (message_id,)
    if user_id is not None:
        sql += " AND user_id = ?"
        params = (message_id, user_id)
    row = await tx.one(sql, params)
    return None if row is None else rows.message(row)


async def pending_head(tx: Tx, *, session_id: str) -> tuple[MessageRecord | None, bool]:
    """The session's oldest pending message, and whether another is pending behind it."""
    found = await tx.all(
        f"SELECT {rows.MESSAGE_COLUMNS} FROM parley_messages "
        f"WHERE session_id = ? AND status IN {rows.PENDING_SQL} ORDER BY seq LIMIT 2",
        (session_id,),
    )
    return (rows.message(found[0]) if found else None), len(found) > 1


async def sessions_with_pending(tx: Tx) -> list[str]:
    """Sessions with a pending message, the one waiting longest first."""
    found = await tx.all(
        "SELECT session_id, min(seq) AS first FROM parley_messages "
        f"WHERE status IN {rows.PENDING_SQL} GROUP BY session_id ORDER BY first"
    )
    return [str(r["session_id"]) for r in found]


async def backlog(tx: Tx) -> Backlog:
    """Messages queued and interrupts pending, database-wide, in one statement (both counts are over
    partial indexes: ``parley_messages_pending``, ``parley_interrupts_pending``)."""
    row = await tx.one(
        "SELECT (SELECT count(*) FROM parley_messages WHERE status = 'queued') AS queued, "
        "(SELECT count(*) FROM parley_interrupts WHERE status = 'pending') AS interrupts"
    )
    assert row is not None
    return Backlog(queued_messages=int(row["queued"]), pending_interrupts=int(row["interrupts"]))


async def update(tx: Tx, sql: str, params: tuple[Any, ...]) -> MessageRecord | None:
    """One guarded ``UPDATE parley_messages … WHERE``: the row after it, or None when the guard
    matched nothing (the message was not in the expected status)."""
    row = await tx.one(f"{sql} RETURNING {rows.MESSAGE_COLUMNS}", params)
    return None if row is None else rows.message(row)


async def mark_running(tx: Tx, *, message_id: str, now: str) -> MessageRecord | None:
    """Pending → ``running``, counting the attempt."""
    return await update(
        tx,
        "UPDATE parley_messages SET status = 'running', attempts = attempts + 1, "
        "started_at = coalesce(started_at, ?), updated_at = ? "
        f"WHERE message_id = ? AND status IN {rows.PENDING_SQL}",
        (now, now, message_id),
    )


async def release(tx: Tx, *, message_id: str, now: str) -> MessageRecord | None:
    """``running`` → ``queued`` without counting the attempt."""
    return await update(
        tx,
        "UPDATE parley_messages SET status = 'queued', "
        "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = ? "
        "WHERE message_id = ? AND status = 'running'",
        (now, message_id),
    )


async def cancel_if_queued(tx: Tx, *, message_id: str, now: str) -> MessageRecord | None:
    """``queued`` → ``cancelled``, with its closing events."""
    closing = closing_events(status=MessageStatus.CANCELLED, interrupt=None, error=CANCELLED_ERROR)
    record = await update(
        tx,
        "UPDATE parley_messages SET status = 'cancelled', finished_at = ?, updated_at = ?, error = ?, "
        "event_seq = event_seq + ? WHERE message_id = ? AND status = 'queued'",
        (now, now, json.dumps(CANCELLED_ERROR), len(closing), message_id),
    )
    if record is not None:
        await _ended(tx, record=record, closing=closing, now=now)
    return record


async def _ended(tx: Tx, *, record: MessageRecord, closing: list[tuple[str, Any]], now: str) -> None:
    """What every move to a terminal status writes with it: the closing events and, for a message with a
    ``callback_url``, its webhook's outbox row — in the same transaction, so neither can be lost."""
    await message_events.insert_run(
        tx, message_id=record.message_id, last=record.event_seq, events=closing, now=now
    )
    if record.callback_url is not None:
        await webhooks.enqueue(tx, message=record, now=now)


async def mark_cancel_requested(tx: Tx, *, message_id: str, now: str) -> MessageRecord | None:
    """Record that a pending message's turn is to be cancelled, unless it has performed an action
    (``ActionPerformed``); None if the message has ended."""
    record = await update(
        tx,
        "UPDATE parley_messages SET cancel_requested_at = coalesce(cancel_requested_at, ?), updated_at = ? "
        f"WHERE message_id = ? AND status IN {rows.PENDING_SQL} AND acted_at IS NULL",
        (now, now, message_id),
    )
    if record is None:
        acted = await tx.one(
            f"SELECT 1 AS acted FROM parley_messages WHERE message_id = ? AND status IN {rows.PENDING_SQL} "
            "AND acted_at IS NOT NULL",
            (message_id,),
        )
        if acted is not None:
            raise ActionPerformed(
                f"Message {message_id}'s turn has already performed an action; it can no longer be cancelled."
            )
    return record


async def check_may_act(tx: Tx, *, message_id: str, name: str) -> None:
    """``TurnCancelled`` once a cancel of the message's turn is recorded: it performs no action. The
    message row stays locked (where the dialect needs it) until the action is recorded, so a cancel and
    an action of one turn cannot both happen."""
    row = await tx.one(
        "SELECT cancel_requested_at FROM parley_messages WHERE message_id = ?" + tx.dialect.for_update,
        (message_id,),
    )
    if row is not None and row["cancel_requested_at"] is not None:
        raise TurnCancelled(f"message {message_id} is being cancelled; {name} not performed")


async def mark_acted(tx: Tx, *, message_id: str, now: str) -> None:
    """The turn has performed an action: from now on it can no longer be cancelled."""
    await tx.execute(
        "UPDATE parley_messages SET acted_at = coalesce(acted_at, ?) WHERE message_id = ?", (now, message_id)
    )


async def finish(
    tx: Tx,
    *,
    message_id: str,
    status: MessageStatus,
    reply: str | None,
    interrupt: list[dict[str, Any]] | None,
    error: dict[str, Any] | None,
    usage: dict[str, Any] | None,
    now: str,
) -> MessageRecord | None:
    """Pending → a terminal status, with the outcome and its closing events."""
    closing = closing_events(status=status, interrupt=interrupt, error=error)
    record = await update(
        tx,
        "UPDATE parley_messages SET status = ?, reply = ?, interrupt = ?, error = ?, usage = ?, "
        "finished_at = ?, updated_at = ?, event_seq = event_seq + ? "
        f"WHERE message_id = ? AND status IN {rows.PENDING_SQL}",
        (
            status.value,
            reply,
            rows.dumps(interrupt),
            rows.dumps(error),
            rows.dumps(usage),
            now,
            now,
            len(closing),
            message_id,
        ),
    )
    if record is not None:
        await _ended(tx, record=record, closing=closing, now=now)
    return record
