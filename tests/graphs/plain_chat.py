"""A user-supplied graph for tests of streaming: one node that asks the configured model and says what it
answers. No review step holds the reply back (the bundled assistant publishes a draft's tokens only once
it has passed review), so its tokens reach a client as the model writes them."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from parley.core.context import GraphContext


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def build(ctx: GraphContext) -> StateGraph[State, Any, Any, Any]:
    model = ctx.model

    async def agent(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder: StateGraph[State, Any, Any, Any] = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    return builder
