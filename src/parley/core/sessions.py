"""Session-level operations that span Parley's tables and the checkpointer."""

from __future__ import annotations

import re
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from parley.core.errors import InvalidInput
from parley.core.ports import Store

CURSOR_PATTERN = r"^[0-9]{1,18}$"
"""A cursor is the transcript position to continue after, in decimal: every string of this form is a
valid cursor (past the end, the page is empty), so the OpenAPI document can state exactly what is
accepted. Eighteen digits are far beyond any transcript and inside SQLite's signed 64-bit integers,
which a larger number would overflow (a crafted cursor made the transcript query fail with a 500)."""

MAX_CURSOR_POSITION = 10**18 - 1


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
