"""Each turn in an asyncio task of its own, registered by message id: a cancel then stops the turn and
not whatever loop runs the session's turns (a drain task in process, a queue job in a worker)."""

from __future__ import annotations

import asyncio
import logging

from parley.core.records import MessageRecord
from parley.core.turns import TurnExecutor
from parley.observability.logs import turn_context

logger = logging.getLogger(__name__)


def _stopping() -> bool:
    """Whether the task running this code is itself being cancelled (the process is stopping)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class TurnTasks:
    """The turns running in this process, by message id."""

    def __init__(self, executor: TurnExecutor) -> None:
        self._executor = executor
        self._turns: dict[str, asyncio.Task[object]] = {}

    def __len__(self) -> int:
        return len(self._turns)

    async def run(self, message: MessageRecord) -> bool:
        """Run ``message``'s turn to its end; False if the turn alone (not the caller) was cancelled
        before it recorded an outcome: its message may still be pending, so look at the queue again."""
        # The task copies the context as it is created: its log lines carry the turn's ids, and only its.
        with turn_context(session=message.session_id, message=message.message_id):
            turn = asyncio.create_task(self._executor.run(message), name=f"parley-turn-{message.message_id}")
        self._turns[message.message_id] = turn
        try:
            await turn
        except asyncio.CancelledError:
            if _stopping():
                raise
            logger.warning("the turn of message %s ended cancelled", message.message_id)
            return False
        finally:
            self._turns.pop(message.message_id, None)
        return True

    def cancel(self, message_id: str) -> bool:
        """Cancel the message's turn if it runs here (and make sure it does not start here); whether it
        was running here."""
        self._executor.request_cancel(message_id)
        turn = self._turns.get(message_id)
        if turn is None:
            return False
        turn.cancel()
        return True
