"""The webhook outbox: ``parley_webhook_deliveries`` (one row per message that ended with a
``callback_url``) and ``parley_webhook_attempts`` (each try at sending one).

A row is written by the transaction that ends its message (``messages._ended``), so the news of an outcome
is as durable as the outcome. Sending it is ``parley.webhooks.deliverer``'s: a process claims due rows with
a lease, so each attempt is made by one process, and a lease that lapses (its process died mid-send) lets
another take the row over — at least once, never lost.
"""

from __future__ import annotations

import uuid

from parley.core.records import DeliveryAttempt, DeliveryView, MessageRecord, WebhookDelivery
from parley.core.timestamps import format_timestamp
from parley.storage.db import Row, Tx
from parley.storage.rows import parse_time

_COLUMNS = (
    "delivery_id, message_id, session_id, user_id, url, status, attempts, next_attempt_at, created_at, "
    "updated_at, finished_at, last_error"
)
_ATTEMPT_COLUMNS = "attempt, started_at, duration_ms, outcome, status_code, error, response_excerpt"


def _delivery(row: Row) -> WebhookDelivery:
    created, updated, due = (parse_time(row[c]) for c in ("created_at", "updated_at", "next_attempt_at"))
    assert created is not None
    assert updated is not None
    assert due is not None
    return WebhookDelivery(
        delivery_id=row["delivery_id"],
        message_id=row["message_id"],
        session_id=row["session_id"],
        user_id=row["user_id"],
        url=row["url"],
        status=row["status"],
        attempts=int(row["attempts"]),
        next_attempt_at=due,
        created_at=created,
        updated_at=updated,
        finished_at=parse_time(row["finished_at"]),
        last_error=row["last_error"],
    )


def _attempt(row: Row) -> DeliveryAttempt:
    started = parse_time(row["started_at"])
    assert started is not None
    return DeliveryAttempt(
        attempt=int(row["attempt"]),
        started_at=started,
        duration_ms=float(row["duration_ms"]),
        outcome=row["outcome"],
        status_code=None if row["status_code"] is None else int(row["status_code"]),
        error=row["error"],
        response_excerpt=row["response_excerpt"],
    )


async def enqueue(tx: Tx, *, message: MessageRecord, now: str) -> None:
    """The delivery of an ended message's outcome, due at once. A message ends once, so it has one; the
    conflict clause only keeps a repeat from failing the transaction that ends it."""
    assert message.callback_url is not None
    await tx.execute(
        f"INSERT INTO parley_webhook_deliveries ({_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, NULL, NULL) ON CONFLICT (message_id) DO NOTHING",
        (
            f"msg_{uuid.uuid4().hex}",
            message.message_id,
            message.session_id,
            message.user_id,
            message.callback_url,
            now,
            now,
            now,
        ),
    )


async def claim(tx: Tx, *, owner: str, now: str, lease_until: str, limit: int) -> list[WebhookDelivery]:
    """Up to ``limit`` pending deliveries that are due and not leased by a live process, oldest first,
    leased to ``owner`` until ``lease_until``; each one's ``attempts`` counts the attempt about to be made
    (and numbers it)."""
    found = await tx.all(
        "UPDATE parley_webhook_deliveries SET leased_by = ?, leased_until = ?, attempts = attempts + 1, "
        "updated_at = ? WHERE delivery_id IN ("
        "SELECT delivery_id FROM parley_webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? "
        "AND (leased_until IS NULL OR leased_until < ?) "
        f"ORDER BY next_attempt_at LIMIT ?{tx.dialect.skip_locked}) RETURNING {_COLUMNS}",
        (owner, lease_until, now, now, now, limit),
    )
    return sorted((_delivery(r) for r in found), key=lambda d: d.next_attempt_at)


async def record_attempt(
    tx: Tx,
    *,
    delivery: WebhookDelivery,
    attempt: DeliveryAttempt,
    next_attempt_at: str | None,
    now: str,
) -> None:
    """Keep the attempt and move the delivery on: ``delivered``, ``failed``, or pending again from
    ``next_attempt_at`` (``retry``), its lease let go. A delivery another process has meanwhile finished
    keeps its status (its attempt is still kept: it was made)."""
    await tx.execute(
        f"INSERT INTO parley_webhook_attempts (delivery_id, session_id, {_ATTEMPT_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id, attempt) DO NOTHING",
        (
            delivery.delivery_id,
            delivery.session_id,
            attempt.attempt,
            format_timestamp(attempt.started_at),
            attempt.duration_ms,
            attempt.outcome,
            attempt.status_code,
            attempt.error,
            attempt.response_excerpt,
        ),
    )
    if attempt.outcome == "retry":
        assert next_attempt_at is not None
        await tx.execute(
            "UPDATE parley_webhook_deliveries SET next_attempt_at = ?, leased_by = NULL, "
            "leased_until = NULL, last_error = ?, updated_at = ? "
            "WHERE delivery_id = ? AND status = 'pending'",
            (next_attempt_at, attempt.error, now, delivery.delivery_id),
        )
    else:
        await tx.execute(
            "UPDATE parley_webhook_deliveries SET status = ?, leased_by = NULL, leased_until = NULL, "
            "last_error = ?, finished_at = ?, updated_at = ? WHERE delivery_id = ? AND status = 'pending'",
            (attempt.outcome, attempt.error, now, now, delivery.delivery_id),
        )


async def release(tx: Tx, *, owner: str, delivery_ids: list[str], now: str) -> None:
    """Let go of leases ``owner`` holds on deliveries it will not send after all (it is stopping): due at
    once for whichever process looks next. The attempt each claim counted is given back."""
    for delivery_id in delivery_ids:
        await tx.execute(
            "UPDATE parley_webhook_deliveries SET leased_by = NULL, leased_until = NULL, "
            "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = ? "
            "WHERE delivery_id = ? AND leased_by = ? AND status = 'pending'",
            (now, delivery_id, owner),
        )


async def of_message(tx: Tx, *, message_id: str) -> list[DeliveryView]:
    """The message's deliveries (at most one today) with their attempts, oldest first."""
    found = await tx.all(
        f"SELECT {_COLUMNS} FROM parley_webhook_deliveries WHERE message_id = ? ORDER BY created_at",
        (message_id,),
    )
    views = []
    for row in found:
        attempts = await tx.all(
            f"SELECT {_ATTEMPT_COLUMNS} FROM parley_webhook_attempts WHERE delivery_id = ? ORDER BY attempt",
            (row["delivery_id"],),
        )
        views.append(DeliveryView(delivery=_delivery(row), attempts=[_attempt(a) for a in attempts]))
    return views


async def prune(tx: Tx, *, finished_before: str) -> int:
    """Delete deliveries that ended before ``finished_before``, with their attempts; deliveries deleted."""
    await tx.execute(
        "DELETE FROM parley_webhook_attempts WHERE delivery_id IN (SELECT delivery_id FROM "
        "parley_webhook_deliveries WHERE finished_at IS NOT NULL AND finished_at < ?)",
        (finished_before,),
    )
    return await tx.execute(
        "DELETE FROM parley_webhook_deliveries WHERE finished_at IS NOT NULL AND finished_at < ?",
        (finished_before,),
    )


async def delete_session(tx: Tx, *, session_id: str) -> None:
    """Remove the session's deliveries and attempts (with the session: nothing of it is sent any more)."""
    for table in ("parley_webhook_attempts", "parley_webhook_deliveries"):
        await tx.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
