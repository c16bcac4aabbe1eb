"""A session's checkpoints, newest first (``GET /v1/sessions/{id}/history``), read through LangGraph's own
saver API (``alist``, ``aget_tuple``), so it is the same for every saver Parley opens.

What each checkpoint says:

- ``step`` and ``source`` are LangGraph's own metadata (``input``: the input of a run arrived; ``loop``:
  a step of the graph ended; ``update``: the state was written from outside the graph; ``fork``: a copy).
- ``node`` is who wrote it. For a ``loop`` checkpoint, the node(s) whose step ended there — LangGraph
  records no writer, so it is read off the checkpoint: the nodes whose ``versions_seen`` changed since
  the parent checkpoint (several nodes of one step: sorted, comma-separated; ``__start__`` is the step
  that applies the input). ``__input__`` for an ``input`` checkpoint; Parley's own updates are
  ``__rewind__`` (a rewind's copy of its target) and ``__rollback__`` (a failed or cancelled turn undone);
  another update is ``__update__``; None when it cannot be told (a fork, or the parent was pruned).
- ``message_id`` is the message whose turn (or rewind, or rollback) wrote it (``checkpoint_tags``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

from parley.core.checkpoint_tags import REWIND_TAG, ROLLBACK_TAG, at_checkpoint, owner_of, thread
from parley.core.errors import InvalidInput
from parley.core.ports import Store
from parley.core.records import CheckpointEntry, CheckpointPage

CHECKPOINT_ID_PATTERN = r"^[0-9A-Za-z-]{1,64}$"
"""A checkpoint id as LangGraph makes them (a UUID), and the history's cursor (the id to continue
before)."""


def check_checkpoint_id(value: str, *, loc: list[str | int]) -> str:
    """``value`` if it has the form of a checkpoint id; ``InvalidInput`` naming ``loc`` if not."""
    if re.fullmatch(CHECKPOINT_ID_PATTERN, value, flags=re.ASCII) is None:
        raise InvalidInput("is not a checkpoint id", loc=loc)
    return value


async def list_history(
    *,
    store: Store,
    checkpointer: BaseCheckpointSaver[Any],
    session_id: str,
    user_id: str,
    operator: bool,
    before: str | None,
    limit: int,
) -> CheckpointPage:
    """Up to ``limit`` of the session's checkpoints older than ``before`` (all, if None), newest first.

    ``NotFound`` unless the session is the caller's (or the caller is an operator). Checkpoint ids sort
    in the order they were written, which is what both savers list by.
    """
    await store.get_session(session_id=session_id, user_id=user_id, operator=operator)
    fetched = [
        item
        async for item in checkpointer.alist(
            thread(session_id),
            before=None if before is None else at_checkpoint(session_id, before),
            limit=limit + 1,
        )
    ]
    by_id = {_id(item): item for item in fetched}
    entries = []
    for item in fetched[:limit]:
        entries.append(_entry(item, await _parent(checkpointer, item, by_id)))
    more = len(fetched) > limit
    return CheckpointPage(items=entries, next_before=entries[-1].checkpoint_id if more else None)


def _id(item: CheckpointTuple) -> str:
    return str(item.config["configurable"]["checkpoint_id"])


async def _parent(
    checkpointer: BaseCheckpointSaver[Any], item: CheckpointTuple, known: dict[str, CheckpointTuple]
) -> CheckpointTuple | None:
    if item.parent_config is None or item.metadata.get("source") != "loop":
        return None  # only a loop checkpoint's writer is read off its parent
    parent_id = str(item.parent_config["configurable"].get("checkpoint_id"))
    if parent_id in known:
        return known[parent_id]
    return await checkpointer.aget_tuple(item.parent_config)


def node_of(item: CheckpointTuple, parent: CheckpointTuple | None) -> str | None:
    """Who wrote the checkpoint (see the module docstring)."""
    metadata = item.metadata
    source = metadata.get("source")
    if source == "input":
        return "__input__"
    if source == "update":
        if REWIND_TAG in metadata:
            return "__rewind__"
        if ROLLBACK_TAG in metadata:
            return "__rollback__"
        return "__update__"
    if source != "loop" or parent is None:
        return None
    seen: dict[str, Any] = dict(item.checkpoint.get("versions_seen") or {})
    earlier: dict[str, Any] = dict(parent.checkpoint.get("versions_seen") or {})
    ran = sorted(node for node, versions in seen.items() if earlier.get(node) != versions)
    return ", ".join(ran) or None


def _entry(item: CheckpointTuple, parent: CheckpointTuple | None) -> CheckpointEntry:
    metadata = item.metadata
    step = metadata.get("step")
    created = datetime.fromisoformat(str(item.checkpoint["ts"]))
    parent_id = (
        None if item.parent_config is None else item.parent_config["configurable"].get("checkpoint_id")
    )
    return CheckpointEntry(
        checkpoint_id=_id(item),
        parent_checkpoint_id=None if parent_id is None else str(parent_id),
        step=step if isinstance(step, int) else None,
        source=str(metadata["source"]) if "source" in metadata else None,
        node=node_of(item, parent),
        message_id=owner_of(dict(metadata)),
        created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
    )
