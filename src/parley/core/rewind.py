"""Time travel: a session continues from one of its earlier checkpoints.

A rewind is a message of its own (kind ``rewind``), accepted like any other and run in the session's
turn order by whoever runs turns (the in-process runner or a queue worker: only they hold the graph). So
no turn writes checkpoints while the head moves, and a rewind is refused (``409``) while one is queued or
running — the check sits in the transaction that records the rewind. What it does:

- **The head moves**: LangGraph's ``aupdate_state(target, None)`` writes a copy of the target as the new
  latest checkpoint (tagged ``REWIND_TAG``), so the next message forks from it; nothing is deleted.
- **What the session waits on follows**: the interrupts pending before are superseded. If the target
  was paused on interrupts, the graph runs from the copy up to them again (the copy has no pending writes,
  as in a failed resume's rollback): they are pending once more, under new ids, and the rewind ends
  ``interrupted`` with them; a target before a static breakpoint pends that breakpoint.
- **The transcript is marked**: lines after the target's turn leave the current branch; lines of the
  turns the target descends from are on it again (``BranchMarks``, ``Store.finish_rewind``).

A rewind that was cut short (the process stopped) runs again: it finds its own copy as the head and
goes on from there instead of copying twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.pregel import Pregel
from langgraph.types import Interrupt, StateSnapshot

from parley.core.checkpoint_tags import (
    CHECKPOINT_TAG,
    REWIND_TAG,
    REWIND_TARGET_TAG,
    USER_TAG,
    at_checkpoint,
    thread,
)
from parley.core.errors import NotFound
from parley.core.events import EventPublisher
from parley.core.ports import Runner, Store
from parley.core.records import BranchMarks, MessageRecord
from parley.core.statuses import InterruptKind, MessageKind, MessageStatus

logger = logging.getLogger(__name__)

ANCESTRY_LIMIT = 1000
"""How many checkpoints a rewind walks back from its target to find the turns on its branch; lines older
than that keep their marks."""

Repose = Callable[[RunnableConfig, MessageRecord], Awaitable[list[dict[str, Any]] | None]]
"""Runs the graph with no input from the session's head up to its interrupts; their ``{id, value, kind}``."""


async def submit_rewind(
    *,
    store: Store,
    runner: Runner,
    checkpointer: BaseCheckpointSaver[Any],
    session_id: str,
    user_id: str,
    checkpoint_id: str,
    idempotency_key: str | None = None,
) -> MessageRecord:
    """Record a rewind of the session to ``checkpoint_id`` and have it run.

    ``NotFound`` for another user's session or a checkpoint the session does not have (or no longer
    has: retention pruned it); ``SessionBusy`` while a message of the session is queued or running,
    whatever the busy policy — a rewind behind a queued message would undo what the user just asked.
    """
    await store.get_session(session_id=session_id, user_id=user_id)
    if await checkpointer.aget_tuple(at_checkpoint(session_id, checkpoint_id)) is None:
        raise NotFound(f"Checkpoint {checkpoint_id} not found in session {session_id}.")
    record = await store.accept_message(
        user_id=user_id,
        session_id=session_id,
        content=None,
        kind=MessageKind.REWIND,
        reject_if_busy=True,
        resume={"checkpoint_id": checkpoint_id},
        idempotency_key=idempotency_key,
    )
    await runner.notify(session_id)
    return record


def _interrupts(values: tuple[Interrupt, ...]) -> list[dict[str, Any]]:
    return [{"id": i.id, "value": i.value, "kind": InterruptKind.of(i.value).value} for i in values]


class Rewinder:
    """Runs rewind messages for a ``TurnExecutor`` (see the module docstring)."""

    def __init__(
        self,
        *,
        graph: Pregel[Any, Any, Any, Any],
        checkpointer: BaseCheckpointSaver[Any],
        store: Store,
        events: EventPublisher,
        repose: Repose,
        breakpoint_outcome: Callable[[str, tuple[str, ...]], list[dict[str, Any]]],
        interrupt_before: tuple[str, ...] = (),
        copy_as: str | None = None,
    ) -> None:
        self._graph = graph
        self._copy_as = copy_as
        self._checkpointer = checkpointer
        self._store = store
        self._events = events
        self._repose = repose
        self._breakpoint = breakpoint_outcome
        self._interrupt_before = interrupt_before

    async def run(self, message: MessageRecord) -> MessageRecord | None:
        """Move the session's head to the rewind's target and record the outcome, once."""
        session_id, message_id = message.session_id, message.message_id
        target_id = str((message.resume or {}).get("checkpoint_id", ""))
        target = await self._checkpointer.aget_tuple(at_checkpoint(session_id, target_id))
        if target is None:
            # Pruned between the request and now (retention skips busy sessions, so rarely): nothing moved.
            error = {"type": "checkpoint_not_found", "detail": f"Checkpoint {target_id} no longer exists."}
            return await self._finish(message, MessageStatus.FAILED, None, error, None)
        metadata = {REWIND_TAG: message_id, REWIND_TARGET_TAG: target_id, USER_TAG: message.user_id}
        moved = False
        try:
            target_state = await self._graph.aget_state(target.config)
            head = await self._checkpointer.aget_tuple(thread(session_id))
            if head is None or owner_rewind(head) != message_id:
                config: RunnableConfig = {**target.config, "metadata": metadata}
                await self._graph.aupdate_state(config, None, as_node=self._copy_as)
            moved = True
            branch = await self._branch(target, target_state)
            status, interrupts = await self._pending(message, target_state, metadata)
        except Exception:
            logger.exception("rewind %s of session %s failed", message_id, session_id)
            error = {"type": "rewind_failed", "detail": "The rewind failed; the session remains usable."}
            # Once the head moved, the session waits on nothing the old head asked; before, on what it did.
            return await self._finish(message, MessageStatus.FAILED, [] if moved else None, error, None)
        return await self._finish(message, status, interrupts, None, branch)

    async def _pending(
        self, message: MessageRecord, target_state: StateSnapshot, metadata: dict[str, Any]
    ) -> tuple[MessageStatus, list[dict[str, Any]]]:
        """What the session waits on from its new head: the target's questions asked again, a breakpoint,
        or nothing."""
        session_id = message.session_id
        head_state = await self._graph.aget_state(thread(session_id))
        if head_state.interrupts:  # asked again by an earlier start of this rewind
            return MessageStatus.INTERRUPTED, _interrupts(head_state.interrupts)
        if target_state.interrupts:
            config: RunnableConfig = {**thread(session_id), "metadata": metadata}
            asked = await self._repose(config, message)
            if asked:
                return MessageStatus.INTERRUPTED, asked
            return MessageStatus.COMPLETED, []
        if set(head_state.next) & set(self._interrupt_before):
            checkpoint_id = str(head_state.config["configurable"]["checkpoint_id"])
            return MessageStatus.INTERRUPTED, self._breakpoint(checkpoint_id, head_state.next)
        return MessageStatus.COMPLETED, []

    async def _branch(self, target: CheckpointTuple, target_state: StateSnapshot) -> BranchMarks:
        """The turns on the target's branch: its ancestry, walked back through parent checkpoints (a
        rollback's or a rewind's copy continues from its parent, so the walk follows the branch)."""
        owner: str | None = None
        owner_input = True
        on_branch: set[str] = set()
        current: CheckpointTuple | None = target
        for _ in range(ANCESTRY_LIMIT):
            if current is None:
                break
            tag = current.metadata.get(CHECKPOINT_TAG)
            if isinstance(tag, str):
                if owner is None:
                    owner = tag
                    # Its input checkpoint holds the message as a pending write, not yet in the state.
                    owner_input = current.metadata.get("source") != "input"
                on_branch.add(tag)
            parent = current.parent_config
            current = await self._checkpointer.aget_tuple(parent) if parent else None
        at_rest = not target_state.next and not target_state.interrupts
        return BranchMarks(
            owner_id=owner, owner_input=owner_input, owner_reply=at_rest, on_branch=frozenset(on_branch)
        )

    async def _finish(
        self,
        message: MessageRecord,
        status: MessageStatus,
        interrupts: list[dict[str, Any]] | None,
        error: dict[str, Any] | None,
        branch: BranchMarks | None,
    ) -> MessageRecord | None:
        await self._events.flush(message.message_id)
        final = await self._store.finish_rewind(
            message_id=message.message_id, status=status, interrupt=interrupts, error=error, branch=branch
        )
        if final is not None:
            self._events.publish_closing(final)
        return final


def owner_rewind(checkpoint: CheckpointTuple) -> str | None:
    """The rewind message that wrote ``checkpoint``, if one did."""
    value = checkpoint.metadata.get(REWIND_TAG)
    return value if isinstance(value, str) else None
