"""A chatbot written with LangGraph's Functional API, hosted by Parley as it would host a graph.

    PYTHONPATH=. PARLEY_GRAPHS=notes=examples.functional_chat:build make run

- Parley calls the entrypoint with ``{"messages": [HumanMessage]}`` — the new message only.
- ``previous`` is what the entrypoint returned last turn: the conversation so far, checkpointed by Parley.
- The model call is a ``@task``: once it has finished, a crash (even ``kill -9``) in the rest of the turn
  does not make it run, or bill, again — Parley continues the turn from its checkpoint.
- ``/forget`` asks the user to confirm with ``interrupt``; the session pauses until the answer comes
  (``POST /v1/sessions/{id}/resume``, ``parley chat``, or the page), however long that takes.
- The reply is the last AI message of the returned ``messages``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, SystemMessage
from langgraph.func import entrypoint, task
from langgraph.types import interrupt

from parley.bots.tools import parse_decision
from parley.core.context import GraphContext
from parley.hosting import Hosted, host

SYSTEM = "You are a concise assistant. Answer in a few sentences."


def build(ctx: GraphContext) -> Hosted:
    """The entrypoint around the configured chat model (``ctx.model``)."""
    model = ctx.model

    @task
    async def answer(history: list[AnyMessage]) -> BaseMessage:
        return await model.ainvoke([SystemMessage(SYSTEM), *history])

    @entrypoint()
    async def notes(inputs: dict[str, Any], *, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        earlier: list[AnyMessage] = list((previous or {}).get("messages", []))
        new: list[AnyMessage] = list(inputs["messages"])
        if str(new[-1].content).strip() == "/forget":
            question = f"Forget the {len(earlier)} earlier messages of this conversation?"
            decision = parse_decision(
                interrupt({"kind": "confirm", "action": "forget", "args": {}, "question": question})
            )
            if decision is not None and decision.verdict == "approve":
                return {"messages": [AIMessage("Done: I have forgotten our conversation.")]}
            return {"messages": [*earlier, AIMessage("Kept: I still remember our conversation.")]}
        history = [*earlier, *new]
        reply = await answer(history)
        return {"messages": [*history, reply]}

    return host(
        notes, interrupts=["confirm"], description="A Functional API chatbot with a memory to forget."
    )
