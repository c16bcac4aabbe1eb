"""One turn: run the graph for one message and give the message its terminal status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from langgraph.types import Command, Interrupt

from parley.core.events import EventBus
from parley.core.statuses import MessageKind, MessageStatus
from parley.storage.records import MessageRecord
from parley.storage.store import Store

logger = logging.getLogger(__name__)

Durability = Literal["sync", "async", "exit"]

CHECKPOINT_TAG = "parley_message_id"
"""Checkpoint metadata key naming the message whose turn wrote the checkpoint."""


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """What a graph run produced, before it is stored."""

    status: MessageStatus
    reply: str | None = None
    interrupt: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None


def _text(message: BaseMessage) -> str:
    return str(message.text)


def reply_of(messages: Sequence[BaseMessage], *, message_id: str) -> str | None:
    """The turn's reply: the last AI message after the user's message (found by its id).

    A graph that answered nothing has no reply. If the user's message is no longer in the state (a
    graph that rewrote its history), the last AI message stands.
    """
    start = 0
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage) and messages[index].id == message_id:
            start = index + 1
            break
    for message in reversed(messages[start:]):
        if isinstance(message, AIMessage):
            text = _text(message)
            return text if text or not message.tool_calls else None
    return None


def _interrupts(values: Sequence[Interrupt]) -> list[dict[str, Any]]:
    return [{"id": i.id, "value": i.value} for i in values]


class TurnExecutor:
    """Runs turns of the hosted graph and records their outcome."""

    def __init__(
        self,
        *,
        graph: Pregel[Any, Any, Any, Any],
        store: Store,
        bus: EventBus,
        durability: Durability,
    ) -> None:
        self._graph = graph
        self._store = store
        self._bus = bus
        self._durability = durability

    async def run(self, message: MessageRecord) -> MessageRecord | None:
        """Run ``message``'s turn to a terminal status; None if it was already terminal.

        ``asyncio.CancelledError`` (the runner stopping) propagates and leaves the message pending,
        so the next start picks it up again: stopping the process never fails a message.
        """
        running = await self._store.mark_running(message_id=message.message_id)
        if running is None:
            return None
        self._bus.publish(message.message_id, "status", {"status": MessageStatus.RUNNING.value})
        try:
            outcome = await self._invoke(running)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("turn failed: message %s session %s", message.message_id, message.session_id)
            outcome = TurnOutcome(
                status=MessageStatus.FAILED,
                error={
                    "type": "turn_failed",
                    "detail": f"The turn failed ({type(exc).__name__}); the session remains usable.",
                },
            )
        final = await self._store.finish(
            message_id=message.message_id,
            status=outcome.status,
            reply=outcome.reply,
            interrupt=outcome.interrupt,
            error=outcome.error,
        )
        if final is not None:
            self._bus.publish(message.message_id, "done", final)
        return final

    def _graph_input(self, message: MessageRecord) -> Any:
        if message.kind is MessageKind.RESUME:
            return Command(resume=message.resume)
        # The message id doubles as the LangChain message id: add_messages replaces by id, so feeding
        # the same message twice (a retried turn) cannot append it twice.
        return {"messages": [HumanMessage(content=message.content or "", id=message.message_id)]}

    async def _invoke(self, message: MessageRecord) -> TurnOutcome:
        config: dict[str, Any] = {
            "configurable": {"thread_id": message.session_id},
            "metadata": {CHECKPOINT_TAG: message.message_id},
        }
        values: dict[str, Any] | None = None
        interrupts: list[Interrupt] = []
        async for raw in self._graph.astream(
            self._graph_input(message),
            cast("RunnableConfig", config),
            stream_mode=["updates", "values"],
            durability=self._durability,
            version="v2",
        ):
            # The stream parts are TypedDicts of a union too wide to narrow usefully; read as dicts.
            part = cast("dict[str, Any]", raw)
            kind = part["type"]
            if kind == "values":
                values = part["data"]
                if part.get("interrupts"):
                    interrupts = list(part["interrupts"])
            elif kind == "updates":
                data = part["data"]
                if isinstance(data, dict):
                    if "__interrupt__" in data:
                        interrupts = list(data["__interrupt__"])
                    nodes = [n for n in data if not n.startswith("__")]
                    if nodes:
                        self._bus.publish(message.message_id, "update", {"nodes": nodes})
        if interrupts:
            return TurnOutcome(status=MessageStatus.INTERRUPTED, interrupt=_interrupts(interrupts))
        messages = (values or {}).get("messages") or []
        return TurnOutcome(
            status=MessageStatus.COMPLETED,
            reply=reply_of(messages, message_id=message.message_id),
        )
