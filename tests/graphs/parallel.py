"""A user-supplied graph that asks two questions at once (two parallel nodes, each interrupting), then
answers with both answers. An answer "boom" makes its node fail, to test a failed resume."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    answers: Annotated[list[str], lambda a, b: a + b]


def _asker(question: str) -> Any:
    async def ask(state: State) -> dict[str, Any]:
        answer = interrupt({"kind": "input", "question": question})
        if answer == "boom":
            raise ValueError("the answer broke the node")
        return {"answers": [f"{question}={answer}"]}

    return ask


async def combine(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(", ".join(sorted(state["answers"])))]}


graph: StateGraph[State, Any, Any, Any] = StateGraph(State)
graph.add_node("colour", _asker("colour"))
graph.add_node("size", _asker("size"))
graph.add_node("combine", combine)
graph.add_edge(START, "colour")
graph.add_edge(START, "size")
graph.add_edge(["colour", "size"], "combine")
graph.add_edge("combine", END)
