"""Session-level operations that span Parley's tables and the checkpointer."""

from __future__ import annotations

import re
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from parley.core.errors import Forbidden, InvalidInput
from parley.core.ports import Store
from parley.core.records import SessionPage, SessionPosition

CURSOR_PATTERN = r"^[0-9]{1,18}$"
"""A cursor is the transcript position to continue after, in decimal: every string of this form is a
valid cursor (past the end, the page is empty), so the OpenAPI document can state exactly what is
accepted. Eighteen digits are far beyond any transcript and inside SQLite's signed 64-bit integers,
which a larger number would overflow (a crafted cursor made the transcript query fail with a 500)."""

MAX_CURSOR_POSITION = 10**18 - 1

SESSIONS_CURSOR_PATTERN = r"^[0-9T:.+Z-]{1,40}~[^\x00-\x1f]{1,100}$"
"""A cursor of the session list: the position to continue after — the last activity as stored, ``~``,
the session id (which may itself hold a ``~``: the timestamp cannot, so the first one separates). Every
string of this form is a valid cursor, compared as text with what storage holds (past the end, the page
is empty), so the OpenAPI document states exactly what is accepted. The timestamp's characters cover
the form Parley writes and the ones older rows hold (``+00:00``, no fraction)."""


async def delete_session(
    *, store: Store, checkpointer: BaseCheckpointSaver[Any], session_id: str, user_id: str
) -> None:
    """Remove a session: its rows first (atomically refused while a turn is pending), then its
    checkpoints. A crash between the two leaves only unreachable checkpoints, never a session whose
    state silently vanished.
    """
    await store.delete_session(session_id=session_id, user_id=user_id)
    await checkpointer.adelete_thread(session_id)


def encode_cursor(position: int) -> str:
    """The pagination cursor for a transcript position (clients treat it as opaque)."""
    return str(position)


def decode_cursor(cursor: str) -> int:
    """The position a cursor stands for; ``InvalidInput`` naming the query field if it is not one."""
    # fullmatch, not int(): int() also takes "+1", " 1", "1_0" and the digits of other scripts.
    if re.fullmatch(CURSOR_PATTERN, cursor, flags=re.ASCII) is None:
        raise InvalidInput(
            "is not a cursor this API returned (up to 18 decimal digits)", loc=["query", "cursor"]
        )
    return int(cursor)


async def list_sessions(
    *, store: Store, user_id: str, operator: bool, owner_id: str | None, cursor: str | None, limit: int
) -> SessionPage:
    """A page of the sessions of ``owner_id`` — the caller's own when None — most recent activity first.

    Only an operator may list another user's sessions (``Forbidden``); the store scopes the query to the
    owner, so a page never holds anyone else's.
    """
    after = None if cursor is None else decode_sessions_cursor(cursor)
    owner = user_id if owner_id is None else owner_id
    if owner != user_id and not operator:
        raise Forbidden("Listing another user's sessions needs the operator role (X-Role: operator).")
    return await store.list_sessions(user_id=owner, after=after, limit=limit)


def encode_sessions_cursor(position: SessionPosition) -> str:
    """The session list's cursor for a position (clients treat it as opaque)."""
    return f"{position.last_activity}~{position.session_id}"


def decode_sessions_cursor(cursor: str) -> SessionPosition:
    """The position a session list's cursor stands for; ``InvalidInput`` naming the query field if it is
    not one."""
    if re.fullmatch(SESSIONS_CURSOR_PATTERN, cursor) is None:
        raise InvalidInput("is not a cursor this API returned", loc=["query", "cursor"])
    last_activity, _, session_id = cursor.partition("~")
    return SessionPosition(last_activity=last_activity, session_id=session_id)
