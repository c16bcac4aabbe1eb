"""A graph whose state has no ``messages`` key, hosted through a mapping (``parley.hosting.host``).

The user's text is written to ``question``; the reply is read from ``answer``. ``asked`` accumulates every
question, so a test sees the state persist across turns. ``[[slow]]`` in a question keeps the second
step busy for 3 s — time for a test to kill the process after the first.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from parley.hosting import host


class State(TypedDict, total=False):
    question: str
    answer: str
    asked: Annotated[list[str], operator.add]


def note(state: State) -> dict[str, Any]:
    return {"asked": [state["question"]]}


async def answer(state: State) -> dict[str, Any]:
    question = state["question"]
    if "[[slow]]" in question:
        await asyncio.sleep(3)
    if "[[confirm]]" in question:
        decision = interrupt({"kind": "confirm", "question": "Answer it?", "action": "answer", "args": {}})
        question = f"{question} (answer: {decision})"
    return {"answer": f"Q{len(state.get('asked', []))}: {question}"}


builder: StateGraph[State, Any, Any, Any] = StateGraph(State)
builder.add_node("note", note)
builder.add_node("answer", answer)
builder.add_edge(START, "note")
builder.add_edge("note", "answer")
builder.add_edge("answer", END)

qa = host(
    builder,
    input="question",
    reply="answer",
    interrupts=["confirm"],
    description="Questions in, answers out.",
)
unmapped = builder
"""The same graph without a mapping: refused at start-up."""
badly_mapped = host(builder, input="prompt", reply="answer")
"""A mapping naming a key the state does not have: refused at start-up."""
