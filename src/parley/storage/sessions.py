"""The ``parley_sessions`` rows: creation, the ownership check every user-reachable query starts with,
the derived session view, a user's sessions a page at a time, deletion."""

from __future__ import annotations

import uuid

from parley.core.errors import NotFound
from parley.core.records import SessionPage, SessionPosition, SessionRecord, SessionSummary
from parley.core.statuses import MessageStatus
from parley.core.titles import TITLE_SOURCE_CHARS
from parley.storage import interrupts, rows, webhooks
from parley.storage.db import Row, Tx


async def create(tx: Tx, *, user_id: str, now: str, graph: str) -> str:
    """A new session of ``user_id``, bound to ``graph`` for good; its id."""
    session_id = str(uuid.uuid4())
    await tx.execute(
        "INSERT INTO parley_sessions (session_id, user_id, created_at, updated_at, graph) "
        "VALUES (?, ?, ?, ?, ?)",
        (session_id, user_id, now, now, graph),
    )
    return session_id


async def graph_of(tx: Tx, *, session_id: str) -> str | None:
    """The graph the session is bound to; None for a session of the default graph made before graphs had
    names, or for no such session."""
    row = await tx.one("SELECT graph FROM parley_sessions WHERE session_id = ?", (session_id,))
    return None if row is None else row["graph"]


async def visible(
    tx: Tx, *, session_id: str, user_id: str, operator: bool = False, lock: bool = False
) -> Row:
    """The session's row if the caller may see it — its owner, or an operator; else ``NotFound``.

    Every user-reachable query starts here, so the ownership rule lives in one place. With ``lock``,
    the row stays locked until the transaction ends: writers of one session take turns.
    """
    sql = (
        "SELECT session_id, user_id, created_at, updated_at, graph FROM parley_sessions WHERE session_id = ?"
    )
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


async def view(tx: Tx, *, row: Row, default_graph: str) -> SessionRecord:
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
        graph=row["graph"] or default_graph,
        created_at=created,
        updated_at=updated,
        message_count=int(counts["total"]),
        pending_count=int(counts["pending"]),
        last_message=None if last is None else rows.message(last),
        interrupts=await interrupts.pending(tx, session_id=session_id),
    )


# The page's sessions come off the index (user_id, updated_at, session_id) in order, and only then are
# their messages looked at: each subquery runs for the page's rows, not for every session of the user.
# The title needs only the start of the first message (core/titles.py), and a message may be long.
_PAGE = f"""
WITH page AS (
    SELECT session_id, user_id, created_at, updated_at FROM parley_sessions
    WHERE user_id = ?{{after}}
    ORDER BY updated_at DESC, session_id DESC
    LIMIT ?
)
SELECT p.session_id, p.user_id, p.created_at, p.updated_at,
    (SELECT count(*) FROM parley_messages m WHERE m.session_id = p.session_id) AS message_count,
    (SELECT count(*) FROM parley_messages m
        WHERE m.session_id = p.session_id AND m.status IN {rows.PENDING_SQL}) AS pending_count,
    (SELECT m.status FROM parley_messages m
        WHERE m.session_id = p.session_id ORDER BY m.seq DESC LIMIT 1) AS last_status,
    EXISTS (SELECT 1 FROM parley_interrupts i
        WHERE i.session_id = p.session_id AND i.status = 'pending') AS interrupted,
    (SELECT substr(t.content, 1, {TITLE_SOURCE_CHARS + 1}) FROM parley_transcript t
        WHERE t.session_id = p.session_id AND t.role = 'user' ORDER BY t.position LIMIT 1) AS first_message
FROM page p
ORDER BY p.updated_at DESC, p.session_id DESC
"""
_FIRST_PAGE = _PAGE.format(after="")
# A row value compares column by column: the sessions after the position in the order above.
_NEXT_PAGE = _PAGE.format(after=" AND (updated_at, session_id) < (?, ?)")


async def page(tx: Tx, *, user_id: str, after: SessionPosition | None, limit: int) -> SessionPage:
    """Up to ``limit`` of the user's sessions after position ``after``: most recent activity first, ties
    by session id (descending), so that the order is total and a page continues exactly where the last
    one ended. One statement for the page, whatever its size."""
    if after is None:
        found = await tx.all(_FIRST_PAGE, (user_id, limit + 1))
    else:
        found = await tx.all(_NEXT_PAGE, (user_id, after.last_activity, after.session_id, limit + 1))
    items = [_summary(r) for r in found[:limit]]
    last = found[limit - 1] if len(found) > limit else None
    return SessionPage(
        items=items,
        next_position=None
        if last is None
        else SessionPosition(last_activity=last["updated_at"], session_id=last["session_id"]),
    )


def _summary(row: Row) -> SessionSummary:
    created, active = rows.parse_time(row["created_at"]), rows.parse_time(row["updated_at"])
    assert created is not None
    assert active is not None
    return SessionSummary(
        session_id=row["session_id"],
        user_id=row["user_id"],
        created_at=created,
        last_activity_at=active,
        message_count=int(row["message_count"]),
        pending_count=int(row["pending_count"]),
        interrupted=bool(row["interrupted"]),
        last_status=None if row["last_status"] is None else MessageStatus(row["last_status"]),
        first_message_start=row["first_message"],
    )


async def delete(tx: Tx, *, session_id: str) -> None:
    """Remove the session's rows in every table of Parley's."""
    await webhooks.delete_session(tx, session_id=session_id)
    for table in ("parley_interrupts", "parley_actions", "parley_transcript", "parley_messages"):
        await tx.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
    await tx.execute("DELETE FROM parley_sessions WHERE session_id = ?", (session_id,))
