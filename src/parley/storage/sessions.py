"""The ``parley_sessions`` rows: creation, the ownership check every user-reachable query starts with,
the derived session view, deletion."""

from __future__ import annotations

import uuid

from parley.core.errors import NotFound
from parley.core.records import SessionRecord
from parley.storage import interrupts, rows
from parley.storage.db import Row, Tx


async def create(tx: Tx, *, user_id: str, now: str) -> str:
    """A new session of ``user_id``; its id."""
    session_id = str(uuid.uuid4())
    await tx.execute(
        "INSERT INTO parley_sessions (session_id, user_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
        (session_id, user_id, now, now),
    )
    return session_id


async def visible(
    tx: Tx, *, session_id: str, user_id: str, operator: bool = False, lock: bool = False
) -> Row:
    """The session's row if the caller may see it — its owner, or an operator; else ``NotFound``.

    Every user-reachable query starts here, so the ownership rule lives in one place. With ``lock``,
    the row stays locked until the transaction ends: writers of one session take turns.
    """
    sql = "SELECT session_id, user_id, created_at, updated_at FROM parley_sessions WHERE session_id = ?"
    params: tuple[str, ...] = (session_id,)
    if not operator:
        sql += " AND user_id = ?"
        params = (session_id, user_id)
    row = await tx.one(sql + (tx.dialect.for_update if lock else ""), params)
    if row is None:
        raise NotFound(f"Session {session_id} not found.")
    return row


async def touch(tx: Tx, *, session_id: str, now: str) -> None:
    """Record activity on the session."""
    await tx.execute("UPDATE parley_sessions SET updated_at = ? WHERE session_id = ?", (now, session_id))


async def view(tx: Tx, *, row: Row) -> SessionRecord:
    """The session with what its messages and interrupts say about it."""
    session_id = row["session_id"]
    counts = await tx.one(
        "SELECT count(*) AS total, "
        f"count(*) FILTER (WHERE status IN {rows.PENDING_SQL}) AS pending "
        "FROM parley_messages WHERE session_id = ?",
        (session_id,),
    )
    last = await tx.one(
        f"SELECT {rows.MESSAGE_COLUMNS} FROM parley_messages WHERE session_id = ? ORDER BY seq DESC LIMIT 1",
        (session_id,),
    )
    created, updated = rows.parse_time(row["created_at"]), rows.parse_time(row["updated_at"])
    assert created is not None
    assert updated is not None
    assert counts is not None
    return SessionRecord(
        session_id=session_id,
        user_id=row["user_id"],
        created_at=created,
        updated_at=updated,
        message_count=int(counts["total"]),
        pending_count=int(counts["pending"]),
        last_message=None if last is None else rows.message(last),
        interrupts=await interrupts.pending(tx, session_id=session_id),
    )


async def delete(tx: Tx, *, session_id: str) -> None:
    """Remove the session's rows in every table of Parley's."""
    for table in ("parley_interrupts", "parley_actions", "parley_transcript", "parley_messages"):
        await tx.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
    await tx.execute("DELETE FROM parley_sessions WHERE session_id = ?", (session_id,))
