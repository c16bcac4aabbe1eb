"""A graph with a subgraph that asks a question: its pending interrupt, and the subgraph's own state,
live in a checkpoint namespace of their own (``ask:<task id>``), beside the root graph's — what an export
must carry for the question to be answered on another instance."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _ask(state: State) -> dict[str, Any]:
    name = interrupt({"question": "What is your name?"})
    return {"messages": [AIMessage(content=f"Hello, {name}! You said {len(state['messages'])} thing(s).")]}


def _inner() -> Any:
    inner = StateGraph(State)
    inner.add_node("question", _ask)
    inner.add_edge(START, "question")
    inner.add_edge("question", END)
    return inner.compile()


outer = StateGraph(State)
outer.add_node("ask", _inner())
outer.add_edge(START, "ask")
outer.add_edge("ask", END)
graph = outer
