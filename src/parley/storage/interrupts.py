"""The ``parley_interrupts`` rows: recorded when a turn pauses, claimed by the resume that answers them.

The claim is one guarded ``UPDATE … WHERE status = 'pending'``: of two resumes of one interrupt, in
one process or many, exactly one changes the row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from parley.core.auth import Answerer
from parley.core.errors import InterruptNotPending
from parley.core.records import InterruptView, PendingInterrupt
from parley.core.statuses import InterruptKind
from parley.core.timestamps import format_timestamp
from parley.storage import rows
from parley.storage.db import Tx


async def pending(tx: Tx, *, session_id: str) -> list[PendingInterrupt]:
    """The session's pending interrupts, oldest first."""
    found = await tx.all(
        f"SELECT {rows.INTERRUPT_COLUMNS} FROM parley_interrupts WHERE session_id = ? AND status = 'pending' "
        "ORDER BY created_at, interrupt_id",
        (session_id,),
    )
    return [rows.interrupt(r) for r in found]


async def any_pending(tx: Tx, *, session_id: str) -> bool:
    """Whether the session waits on an interrupt (one indexed row, no payload decoded)."""
    row = await tx.one(
        "SELECT 1 AS waits FROM parley_interrupts WHERE session_id = ? AND status = 'pending' LIMIT 1",
        (session_id,),
    )
    return row is not None


async def record(
    tx: Tx, *, session_id: str, message_id: str, user_id: str, interrupts: list[dict[str, Any]], now: str
) -> None:
    """What the session waits on after ``message_id``'s turn: exactly ``interrupts``.

    Earlier pending interrupts that the turn did not raise again are superseded (the graph moved past
    them). One raised again keeps its row — and stays answered if a queued resume already claimed it.
    """
    ids = [i["id"] for i in interrupts]
    keep = f" AND interrupt_id NOT IN ({', '.join('?' for _ in ids)})" if ids else ""
    await tx.execute(
        "UPDATE parley_interrupts SET status = 'superseded', updated_at = ? "
        f"WHERE session_id = ? AND status = 'pending'{keep}",
        (now, session_id, *ids),
    )
    for item in interrupts:
        await tx.execute(
            "INSERT INTO parley_interrupts (session_id, interrupt_id, message_id, user_id, kind, value, "
            "status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?) "
            "ON CONFLICT (session_id, interrupt_id) DO UPDATE SET message_id = excluded.message_id, "
            "value = excluded.value, kind = excluded.kind, updated_at = excluded.updated_at, "
            "status = CASE parley_interrupts.status WHEN 'answered' THEN 'answered' ELSE 'pending' END",
            (
                session_id,
                item["id"],
                message_id,
                user_id,
                InterruptKind.of(item["value"]).value,
                rows.dumps(item["value"]),
                now,
                now,
            ),
        )


async def find(tx: Tx, *, session_id: str, interrupt_id: str) -> tuple[PendingInterrupt, str] | None:
    """The interrupt and its status, or None if the session never had it."""
    row = await tx.one(
        f"SELECT {rows.INTERRUPT_COLUMNS}, status FROM parley_interrupts "
        "WHERE session_id = ? AND interrupt_id = ?",
        (session_id, interrupt_id),
    )
    return None if row is None else (rows.interrupt(row), str(row["status"]))


async def not_pending(tx: Tx, *, session_id: str, interrupt_id: str, state: str) -> InterruptNotPending:
    """The error for a resume of an interrupt the session does not wait on (listing what it waits on)."""
    return InterruptNotPending(
        f"Interrupt {interrupt_id} is not pending on session {session_id} ({state}).",
        interrupt_id=interrupt_id,
        pending=[i.interrupt_id for i in await pending(tx, session_id=session_id)],
    )


async def claim(
    tx: Tx,
    *,
    session_id: str,
    interrupt_id: str,
    message_id: str,
    answerer: Answerer | None,
    now: str,
) -> None:
    """Mark a pending interrupt answered by ``message_id`` — given by ``answerer``, recorded in the same
    statement, so the row never says answered without saying by whom; ``InterruptNotPending`` if it no
    longer is pending (another resume won the race)."""
    who = answerer or Answerer(via="unauthenticated", role="user", key_id=None, key_name=None, user_id=None)
    changed = await tx.execute(
        "UPDATE parley_interrupts SET status = 'answered', answered_by = ?, updated_at = ?, "
        "answered_at = ?, answered_via = ?, answered_role = ?, answered_key_id = ?, answered_key_name = ?, "
        "answered_user_id = ? "
        "WHERE session_id = ? AND interrupt_id = ? AND status = 'pending'",
        (
            message_id,
            now,
            now,
            who.via,
            who.role,
            who.key_id,
            who.key_name,
            who.user_id,
            session_id,
            interrupt_id,
        ),
    )
    if changed != 1:
        raise await not_pending(tx, session_id=session_id, interrupt_id=interrupt_id, state="answered")


async def release_claim(tx: Tx, *, message_id: str, now: str) -> None:
    """Put back to pending the interrupt a resume claimed, when that resume never ran."""
    await tx.execute(
        "UPDATE parley_interrupts SET status = 'pending', answered_by = NULL, updated_at = ?, "
        "answered_at = NULL, answered_via = NULL, answered_role = NULL, answered_key_id = NULL, "
        "answered_key_name = NULL, answered_user_id = NULL "
        "WHERE answered_by = ? AND status = 'answered'",
        (now, message_id),
    )


async def queue(
    tx: Tx,
    *,
    kind: str | None,
    created_before: datetime | None,
    session_id: str | None,
    limit: int,
    graph: str | None = None,
    default_graph: str,
) -> list[PendingInterrupt]:
    """Pending interrupts across sessions, oldest first (the operator queue), each with its session's graph
    (``default_graph`` for a session made before graphs had names)."""
    where = ["i.status = 'pending'"]
    params: list[Any] = []
    if kind is not None:
        where.append("i.kind = ?")
        params.append(kind)
    if created_before is not None:
        where.append("i.created_at <= ?")
        params.append(format_timestamp(created_before))
    if session_id is not None:
        where.append("i.session_id = ?")
        params.append(session_id)
    if graph is not None:
        where.append("coalesce(s.graph, ?) = ?")
        params.extend((default_graph, graph))
    columns = ", ".join(f"i.{column.strip()}" for column in rows.INTERRUPT_COLUMNS.split(","))
    found = await tx.all(
        f"SELECT {columns}, coalesce(s.graph, ?) AS graph FROM parley_interrupts i "
        "JOIN parley_sessions s ON s.session_id = i.session_id "
        f"WHERE {' AND '.join(where)} ORDER BY i.created_at, i.interrupt_id LIMIT ?",
        (default_graph, *params, limit),
    )
    return [rows.interrupt(r) for r in found]


_VIEW_COLUMNS = ", ".join(
    f"i.{column.strip()}"
    for column in (
        *rows.INTERRUPT_COLUMNS.split(","),
        "status",
        "answered_by",
        "answered_at",
        "answered_via",
        "answered_role",
        "answered_key_id",
        "answered_key_name",
        "answered_user_id",
    )
)
"""What ``view`` reads: the interrupt's row as the queue reads it, and what its claim recorded."""


async def view(tx: Tx, *, interrupt_id: str, user_id: str, operator: bool) -> InterruptView | None:
    """The interrupt (any status) with who answered it, if the caller may see it: one of the user's
    sessions, or any for an operator. Interrupt ids are unique in practice (LangGraph derives them from
    the task); should two sessions share one, the newest is the one shown."""
    owner = "" if operator else " AND s.user_id = ?"
    row = await tx.one(
        f"SELECT {_VIEW_COLUMNS} FROM parley_interrupts i "
        "JOIN parley_sessions s ON s.session_id = i.session_id "
        f"WHERE i.interrupt_id = ?{owner} ORDER BY i.created_at DESC LIMIT 1",
        (interrupt_id,) if operator else (interrupt_id, user_id),
    )
    if row is None:
        return None
    answerer = None
    if row["answered_via"] is not None:
        answerer = Answerer(
            via=row["answered_via"],
            role=row["answered_role"] or "user",
            key_id=row["answered_key_id"],
            key_name=row["answered_key_name"],
            user_id=row["answered_user_id"],
        )
    return InterruptView(
        interrupt=rows.interrupt(row),
        status=str(row["status"]),
        answered_at=rows.parse_time(row["answered_at"]),
        answered_message_id=row["answered_by"],
        answerer=answerer,
    )
