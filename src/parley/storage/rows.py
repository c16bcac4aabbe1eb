"""Converting between rows and records: timestamps, JSON columns, the message record."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from parley.core.records import MessageRecord, PendingInterrupt
from parley.core.statuses import PENDING_STATUSES, MessageKind, MessageStatus
from parley.storage.db import Row

# Statuses are enum values, never user input: safe to inline in SQL.
PENDING_SQL = "(" + ", ".join(f"'{s.value}'" for s in sorted(PENDING_STATUSES)) + ")"

MESSAGE_COLUMNS = (
    "message_id, session_id, user_id, seq, kind, content, resume, status, reply, interrupt, error, "
    "attempts, created_at, updated_at, started_at, finished_at, actor, usage, cancel_requested_at, "
    "event_seq, callback_url"
)
INTERRUPT_COLUMNS = "interrupt_id, session_id, message_id, user_id, kind, value, created_at"


def parse_time(value: str | None) -> datetime | None:
    """A stored timestamp (any ISO-8601 text an earlier version wrote) as an aware datetime."""
    return None if value is None else datetime.fromisoformat(value)


def dumps(value: Any) -> str | None:
    """A JSON column's text; None stays NULL."""
    return None if value is None else json.dumps(value, default=str)


def loads(value: str | None) -> Any:
    """A JSON column's value."""
    return None if value is None else json.loads(value)


def message(row: Row) -> MessageRecord:
    """The record of a ``parley_messages`` row read with ``MESSAGE_COLUMNS``."""
    created = parse_time(row["created_at"])
    updated = parse_time(row["updated_at"])
    assert created is not None
    assert updated is not None
    return MessageRecord(
        message_id=row["message_id"],
        session_id=row["session_id"],
        user_id=row["user_id"],
        seq=int(row["seq"]),
        kind=MessageKind(row["kind"]),
        content=row["content"],
        resume=loads(row["resume"]),
        status=MessageStatus(row["status"]),
        reply=row["reply"],
        interrupt=loads(row["interrupt"]),
        error=loads(row["error"]),
        attempts=int(row["attempts"]),
        created_at=created,
        updated_at=updated,
        started_at=parse_time(row["started_at"]),
        finished_at=parse_time(row["finished_at"]),
        actor=row["actor"],
        usage=loads(row["usage"]),
        cancel_requested=row["cancel_requested_at"] is not None,
        event_seq=int(row["event_seq"]),
        callback_url=row["callback_url"],
    )


def interrupt(row: Row) -> PendingInterrupt:
    """The record of a ``parley_interrupts`` row read with ``INTERRUPT_COLUMNS``."""
    created = parse_time(row["created_at"])
    assert created is not None
    return PendingInterrupt(
        interrupt_id=row["interrupt_id"],
        session_id=row["session_id"],
        message_id=row["message_id"],
        user_id=row["user_id"],
        kind=row["kind"],
        value=json.loads(row["value"]),
        created_at=created,
        graph=row["graph"] if "graph" in row.keys() else None,  # noqa: SIM118 - sqlite3.Row has no `in`
    )
