"""Checkpoint retention: each session keeps its latest ``keep`` checkpoints; older ones are pruned in the
background by the processes that run turns (the in-process runner's, or each worker).

LangGraph writes a checkpoint per step, so a long conversation piles them up (the bundled assistant's
are tens of kilobytes each) though only the latest is needed to go on. A session is noted when a turn of
it ends (``TurnExecutor.on_turn_end``) and pruned on the next pass, a bounded batch every
``interval_seconds``: work follows the turns, never a scan of every session. Time travel (history,
rewind) reaches back as far as what is kept. What may be deleted, and why it is safe while turns run, is
the pruner's (``CheckpointPruner``; ``storage/checkpoint_pruning.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from parley.core.errors import first_line
from parley.core.ports import CheckpointPruner

logger = logging.getLogger(__name__)

MAX_BATCH = 200
"""Sessions pruned in one pass at most; the rest wait for the next."""


class CheckpointRetention:
    """Prunes the checkpoints of sessions whose turns ended (see the module docstring)."""

    def __init__(self, *, pruner: CheckpointPruner, keep: int, interval_seconds: float) -> None:
        if keep < 1:
            raise ValueError("keep at least one checkpoint (the head)")
        self._pruner = pruner
        self._keep = keep
        self._interval = interval_seconds
        self._noted: dict[str, None] = {}  # insertion-ordered: the longest waiting first
        self._task: asyncio.Task[None] | None = None

    def note(self, session_id: str) -> None:
        """A turn of ``session_id`` ended: prune it on the next pass."""
        self._noted[session_id] = None

    async def start(self) -> None:
        """Start pruning in the background."""
        self._task = asyncio.create_task(self._prune_forever(), name="parley-checkpoint-retention")

    async def stop(self) -> None:
        """Stop pruning (a pass under way is cut; what it did not delete waits for the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def prune_noted(self) -> int:
        """One pass: prune up to ``MAX_BATCH`` noted sessions; rows deleted."""
        batch = list(self._noted)[:MAX_BATCH]
        deleted = 0
        for session_id in batch:
            self._noted.pop(session_id, None)
            try:
                deleted += await self._pruner.prune(session_id=session_id, keep=self._keep)
            except Exception as exc:
                # Pruned on a later pass, once a turn of it ends again.
                logger.warning("could not prune checkpoints of session %s (%s)", session_id, first_line(exc))
        return deleted

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            deleted = await self.prune_noted()
            if deleted:
                logger.debug("pruned %d checkpoint rows", deleted)
