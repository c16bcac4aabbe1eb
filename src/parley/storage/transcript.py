"""The ``parley_transcript`` rows: the conversation as the user sees it.

``position`` is ``2·seq`` for the user's line and ``2·seq + 1`` for the reply, so the transcript reads
in conversation order whatever order its rows were written in.
"""

from __future__ import annotations

from parley.core.records import TranscriptEntry, TranscriptPage
from parley.storage import rows
from parley.storage.db import Tx


async def add(
    tx: Tx, *, session_id: str, seq: int, message_id: str, role: str, content: str, now: str
) -> None:
    """One line: the user's message (``role="user"``) or the reply to it."""
    position = 2 * seq + (0 if role == "user" else 1)
    await tx.execute(
        "INSERT INTO parley_transcript (session_id, position, message_id, role, content, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (session_id, position, message_id, role, content, now),
    )


async def page(tx: Tx, *, session_id: str, after: int | None, limit: int) -> TranscriptPage:
    """Up to ``limit`` lines after position ``after``, oldest first."""
    found = await tx.all(
        "SELECT position, message_id, role, content, created_at FROM parley_transcript "
        "WHERE session_id = ? AND position > ? ORDER BY position LIMIT ?",
        (session_id, -1 if after is None else after, limit + 1),
    )
    items = []
    for r in found[:limit]:
        created = rows.parse_time(r["created_at"])
        assert created is not None
        items.append(
            TranscriptEntry(
                position=int(r["position"]),
                message_id=r["message_id"],
                role=r["role"],
                content=r["content"],
                created_at=created,
            )
        )
    more = len(found) > limit
    return TranscriptPage(items=items, next_position=items[-1].position if more else None)
