"""A user-supplied graph whose reply streams in two parts with a gate between them: the model's first
token is published, then the turn waits until the file named by ``STREAM_GATE`` exists before the rest
of the reply is generated. A test sees the first words arrive while the last do not exist yet — streaming
shown without guessing at timings.

Its node draws the reply from the configured (scripted) model without a hold tag, so every token is
published as the model emits it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from parley.core.context import GraphContext


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def build(ctx: GraphContext) -> StateGraph[State, Any, Any, Any]:
    gate = Path(os.environ["STREAM_GATE"])

    async def agent(state: State, config: RunnableConfig) -> dict[str, Any]:
        parts: list[str] = []
        async for chunk in ctx.model.astream(state["messages"], config):
            parts.append(str(chunk.content))
            while len(parts) == 1 and not gate.exists():
                # The model is suspended after its first token (already published) until the test opens
                # the gate.
                await asyncio.sleep(0.02)
        return {"messages": [AIMessage("".join(parts))]}

    graph: StateGraph[State, Any, Any, Any] = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_edge(START, "agent")
    graph.add_edge("agent", END)
    return graph
