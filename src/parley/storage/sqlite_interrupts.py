"""The pending-interrupt rows of the SQLite store: recorded when a turn pauses, claimed by a resume.

Functions here run inside the store's transactions (they take its connection); the claim is a single
guarded UPDATE, which is why two concurrent resumes of one interrupt cannot both win.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from parley.core.errors import Forbidden, InterruptNotPending
from parley.core.statuses import InterruptKind
from parley.storage.records import PendingInterrupt

_COLUMNS = "interrupt_id, session_id, message_id, user_id, kind, value, created_at"


def _row(row: sqlite3.Row) -> PendingInterrupt:
    return PendingInterrupt(
        interrupt_id=row["interrupt_id"],
        session_id=row["session_id"],
        message_id=row["message_id"],
        user_id=row["user_id"],
        kind=row["kind"],
        value=json.loads(row["value"]),
        created_at=datetime.fromisoformat(row["created_at"]),
    )


def pending(conn: sqlite3.Connection, *, session_id: str) -> list[PendingInterrupt]:
    """The session's pending interrupts, oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM parley_interrupts WHERE session_id = ? AND status = 'pending' "
        "ORDER BY created_at, interrupt_id",
        (session_id,),
    ).fetchall()
    return [_row(r) for r in rows]


def record(
    conn: sqlite3.Connection,
    *,
    session_id: str,
    message_id: str,
    user_id: str,
    interrupts: list[dict[str, Any]],
    now: str,
) -> None:
    """What the session waits on after ``message_id``'s turn: exactly ``interrupts``.

    Earlier pending interrupts that the turn did not raise again are superseded (the graph moved past
    them). One raised again keeps its row — and stays answered if a queued resume already claimed it.
    """
    ids = [i["id"] for i in interrupts]
    marks = ", ".join("?" for _ in ids)
    conn.execute(
        "UPDATE parley_interrupts SET status = 'superseded', updated_at = ? "
        f"WHERE session_id = ? AND status = 'pending' {f'AND interrupt_id NOT IN ({marks})' if ids else ''}",
        (now, session_id, *ids),
    )
    for interrupt in interrupts:
        conn.execute(
            "INSERT INTO parley_interrupts (session_id, interrupt_id, message_id, user_id, kind, value, "
            "status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?) "
            "ON CONFLICT (session_id, interrupt_id) DO UPDATE SET message_id = excluded.message_id, "
            "value = excluded.value, kind = excluded.kind, updated_at = excluded.updated_at, "
            "status = CASE status WHEN 'answered' THEN 'answered' ELSE 'pending' END",
            (
                session_id,
                interrupt["id"],
                message_id,
                user_id,
                InterruptKind.of(interrupt["value"]).value,
                json.dumps(interrupt["value"], default=str),
                now,
                now,
            ),
        )


def claim(
    conn: sqlite3.Connection,
    *,
    session_id: str,
    interrupt_id: str,
    message_id: str,
    operator: bool,
    now: str,
) -> PendingInterrupt:
    """Mark the interrupt answered by ``message_id``; ``InterruptNotPending`` unless it was pending.

    An operator's review can only be answered by an operator (``Forbidden`` for the end user).
    """
    row = conn.execute(
        f"SELECT {_COLUMNS}, status FROM parley_interrupts WHERE session_id = ? AND interrupt_id = ?",
        (session_id, interrupt_id),
    ).fetchone()
    if row is None or row["status"] != "pending":
        state = "unknown" if row is None else row["status"]
        raise InterruptNotPending(
            f"Interrupt {interrupt_id} is not pending on session {session_id} ({state}).",
            interrupt_id=interrupt_id,
            pending=[i.interrupt_id for i in pending(conn, session_id=session_id)],
        )
    interrupt = _row(row)
    if InterruptKind(interrupt.kind).operator_only and not operator:
        raise Forbidden(f"Interrupt {interrupt_id} waits for an operator's review.")
    cursor = conn.execute(
        "UPDATE parley_interrupts SET status = 'answered', answered_by = ?, updated_at = ? "
        "WHERE session_id = ? AND interrupt_id = ? AND status = 'pending'",
        (message_id, now, session_id, interrupt_id),
    )
    if cursor.rowcount != 1:  # unreachable inside one transaction; kept as the invariant's guard
        raise InterruptNotPending(f"Interrupt {interrupt_id} was answered meanwhile.")
    return interrupt


def release_claims(conn: sqlite3.Connection, *, session_id: str, message_id: str, now: str) -> None:
    """Put the interrupts ``message_id`` claimed back to ``pending``: its turn did not happen (cancelled
    before it started, or undone without asking again), so the graph still waits on them."""
    conn.execute(
        "UPDATE parley_interrupts SET status = 'pending', answered_by = NULL, updated_at = ? "
        "WHERE session_id = ? AND answered_by = ? AND status = 'answered'",
        (now, session_id, message_id),
    )


def waits(conn: sqlite3.Connection, *, session_id: str) -> bool:
    """Whether the session has a pending interrupt."""
    row = conn.execute(
        "SELECT 1 FROM parley_interrupts WHERE session_id = ? AND status = 'pending' LIMIT 1", (session_id,)
    ).fetchone()
    return row is not None


def list_pending(
    conn: sqlite3.Connection,
    *,
    kind: str | None,
    created_before: str | None,
    session_id: str | None,
    limit: int,
) -> list[PendingInterrupt]:
    """Pending interrupts across sessions, oldest first, for the operator queue."""
    where = ["status = 'pending'"]
    params: list[Any] = []
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    if created_before is not None:
        where.append("created_at <= ?")
        params.append(created_before)
    if session_id is not None:
        where.append("session_id = ?")
        params.append(session_id)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM parley_interrupts WHERE {' AND '.join(where)} "
        "ORDER BY created_at, interrupt_id LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [_row(r) for r in rows]
