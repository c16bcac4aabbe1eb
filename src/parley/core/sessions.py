"""Session-level operations that span Parley's tables and the checkpointer."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from parley.core.errors import InvalidInput
from parley.storage.store import Store

MAX_CURSOR_POSITION = 2**62
"""Far beyond any transcript, and well inside SQLite's signed 64-bit integers, which a larger number
would overflow (a crafted cursor made the transcript query fail with a 500)."""


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
    """An opaque pagination cursor for a transcript position."""
    return base64.urlsafe_b64encode(f"t:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position a cursor stands for; ``InvalidInput`` naming the query field if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        # Only what encode_cursor writes: ASCII digits (int() would also take "+1", " 1", "1_0" and the
        # digits of other scripts).
        if prefix != "t" or not (number.isascii() and number.isdigit()):
            raise ValueError(raw)
        position = int(number)
        if position > MAX_CURSOR_POSITION:
            raise ValueError(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("is not a cursor this API returned", loc=["query", "cursor"]) from None
    return position
