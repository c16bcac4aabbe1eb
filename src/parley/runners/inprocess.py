"""The embedded runner: an asyncio task per busy session, owned by the app's lifespan.

Ordering is a property of the data, not of memory: a session's task always asks the store for the
session's oldest pending message, so turns run in arrival order (``seq``) and a restart resumes the
same sequence. At most one task exists per session, so turns of a session never overlap; a semaphore
bounds how many sessions run at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

from parley.core.errors import StorageUnavailable
from parley.core.ports import Store
from parley.core.turns import TurnExecutor
from parley.runners.turn_tasks import TurnTasks

logger = logging.getLogger(__name__)

_MAX_BACKOFF = 30.0


class InProcessRunner:
    """Per-session drain loops in this process (see module docstring)."""

    def __init__(self, *, store: Store, executor: TurnExecutor, max_concurrent: int) -> None:
        self._store = store
        self._executor = executor
        self._slots = asyncio.Semaphore(max_concurrent)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # The turn each session is running now, by message id: what cancel() cancels.
        self._turns = TurnTasks(executor)
        # Sessions notified while their task was between "no more work" and exiting.
        self._dirty: set[str] = set()
        self._accepting = False

    @property
    def running(self) -> bool:
        """Whether the runner takes new work."""
        return self._accepting

    @property
    def running_turns(self) -> int:
        """Turns running now (the metrics' gauge)."""
        return len(self._turns)

    @property
    def active_sessions(self) -> int:
        """Sessions with a drain task (for tests and metrics)."""
        return len(self._tasks)

    async def start(self) -> None:
        """Accept work, then resume every session a previous process left with pending messages."""
        self._accepting = True
        pending = await self._store.sessions_with_pending()
        if pending:
            logger.info("recovering %d session(s) with pending messages", len(pending))
        for session_id in pending:
            await self.notify(session_id)

    async def notify(self, session_id: str) -> None:
        """Ensure a drain task runs for ``session_id``. Nothing in it awaits, so it cannot interleave with
        a drain task's exit check."""
        if not self._accepting:
            # Stopping: the message stays queued in storage and the next start picks it up.
            return
        if session_id in self._tasks:
            self._dirty.add(session_id)
            return
        # In a context of its own, not the request's that woke it: the drain outlives the request and runs
        # other requests' messages, whose log lines and spans must not carry this one's ids.
        task = asyncio.create_task(
            self._drain(session_id), name=f"parley-session-{session_id}", context=contextvars.Context()
        )
        self._tasks[session_id] = task

    async def _drain(self, session_id: str) -> None:
        backoff = 0.5
        try:
            while self._accepting:
                self._dirty.discard(session_id)
                try:
                    head = await self._store.next_pending(session_id=session_id)
                    message = head.message
                    if message is None:
                        # Between the query and here nothing awaited, so a notify that raced the
                        # query has set the dirty flag, which we check before leaving.
                        if session_id in self._dirty:
                            continue
                        return
                    async with self._slots:
                        if not await self._turns.run(message):
                            continue
                    backoff = 0.5
                    if not head.more and session_id not in self._dirty:
                        # Nothing else was pending when we looked and nothing was accepted since: done,
                        # without asking storage again (one query less per turn, measurable under load).
                        return
                except StorageUnavailable:
                    logger.warning(
                        "storage unavailable while running session %s; retrying in %.1fs",
                        session_id,
                        backoff,
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                except Exception:
                    # A bug must not silence the session until the next restart: log it, back off, and
                    # try again (the message's attempts bound how often its turn is started).
                    logger.exception(
                        "unexpected error running session %s; retrying in %.1fs", session_id, backoff
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
        finally:
            self._tasks.pop(session_id, None)
            self._dirty.discard(session_id)

    async def cancel(self, message_id: str) -> None:
        """Cancel a running turn, or make sure a queued one will not start."""
        self._turns.cancel(message_id)

    async def stop(self, *, grace: float) -> None:
        """Stop taking turns; wait up to ``grace`` seconds for running ones, then cancel the rest.

        A cancelled turn's message goes back to ``queued`` without spending an attempt (``Store.release``;
        it stays ``running`` if storage cannot be reached), and the next start runs it.
        """
        self._accepting = False
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, still_running = await asyncio.wait(tasks, timeout=grace)
        for task in still_running:
            task.cancel()
        if still_running:
            logger.info("cancelled %d turn(s) after the grace period", len(still_running))
            await asyncio.gather(*still_running, return_exceptions=True)
