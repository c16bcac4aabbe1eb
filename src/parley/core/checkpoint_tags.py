"""The metadata Parley writes on LangGraph checkpoints, so that a checkpoint says which message made it.

Recovery (``core/turns.py``), history and rewind (``core/history.py``, ``core/rewind.py``) read them back.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

CHECKPOINT_TAG = "parley_message_id"
"""Checkpoint metadata key naming the message whose turn wrote the checkpoint."""
USER_TAG = "parley_user_id"
"""Checkpoint metadata key naming the session's user (nodes read it, e.g. to own the orders they place)."""
GRAPH_TAG = "parley_graph"
"""Checkpoint metadata key naming the hosted graph (``PARLEY_GRAPHS``) whose run wrote the checkpoint: a
session's thread only ever holds its own graph's checkpoints, and each says which."""
ROLLBACK_TAG = "parley_rollback_of"
"""Checkpoint metadata key of the checkpoint that undid a failed or cancelled turn."""
REWIND_TAG = "parley_rewind"
"""Checkpoint metadata key naming the rewind message that wrote the checkpoint (its copy of the target,
and the checkpoints of asking the target's questions again)."""
REWIND_TARGET_TAG = "parley_rewind_to"
"""Checkpoint metadata key of a rewind's copy: the checkpoint it continues from."""


def owner_of(metadata: dict[str, Any] | None) -> str | None:
    """The message a checkpoint belongs to: the turn, rewind or rollback that wrote it."""
    found = metadata or {}
    for key in (CHECKPOINT_TAG, REWIND_TAG, ROLLBACK_TAG):
        value = found.get(key)
        if isinstance(value, str):
            return value
    return None


def thread(session_id: str) -> RunnableConfig:
    """The config naming a session's latest checkpoint (its root namespace)."""
    return {"configurable": {"thread_id": session_id, "checkpoint_ns": ""}}


def at_checkpoint(session_id: str, checkpoint_id: str) -> RunnableConfig:
    """The config naming one checkpoint of a session — only found in that session's thread."""
    return {"configurable": {"thread_id": session_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}
