"""The ``parley_transcript`` rows: the conversation as the user sees it.

``position`` is ``2·seq`` for the user's line and ``2·seq + 1`` for the reply, so the transcript reads
in conversation order whatever order its rows were written in.
"""

from __future__ import annotations

from parley.core.records import BranchMarks, TranscriptEntry, TranscriptPage
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
        "SELECT position, message_id, role, content, created_at, rewound_at, rewound_by "
        "FROM parley_transcript "
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
                rewound_at=rows.parse_time(r["rewound_at"]),
                rewound_by=r["rewound_by"],
            )
        )
    more = len(found) > limit
    return TranscriptPage(items=items, next_position=items[-1].position if more else None)


async def mark_branch(
    tx: Tx, *, session_id: str, rewind_seq: int, owner_seq: int, marks: BranchMarks, rewind_id: str, now: str
) -> None:
    """Mark which lines a rewind (message ``rewind_id``, at ``rewind_seq``) leaves on the session's branch.

    Lines after the owner's (``owner_seq``) and before the rewind leave it; the owner's own lines follow
    ``marks``; lines of ``marks.on_branch`` messages before the owner are on it again (a rewind back to an
    abandoned branch). Lines after the rewind belong to messages that fork from it and are untouched.
    """
    off = "rewound_at = COALESCE(rewound_at, ?), rewound_by = COALESCE(rewound_by, ?)"
    await tx.execute(
        f"UPDATE parley_transcript SET {off} WHERE session_id = ? AND position > ? AND position < ?",
        (now, rewind_id, session_id, 2 * owner_seq + 1, 2 * rewind_seq),
    )
    if marks.owner_id is not None:
        for position, kept in ((2 * owner_seq, marks.owner_input), (2 * owner_seq + 1, marks.owner_reply)):
            if kept:
                await tx.execute(
                    "UPDATE parley_transcript SET rewound_at = NULL, rewound_by = NULL "
                    "WHERE session_id = ? AND position = ?",
                    (session_id, position),
                )
            else:
                await tx.execute(
                    f"UPDATE parley_transcript SET {off} WHERE session_id = ? AND position = ?",
                    (now, rewind_id, session_id, position),
                )
    ids = sorted(marks.on_branch)
    if ids:
        await tx.execute(
            "UPDATE parley_transcript SET rewound_at = NULL, rewound_by = NULL "
            f"WHERE session_id = ? AND position < ? AND message_id IN ({', '.join('?' for _ in ids)})",
            (session_id, 2 * owner_seq, *ids),
        )
