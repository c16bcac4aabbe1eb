"""The bundled assistant: chat with bounded memory and a system prompt from settings.

Its state keeps a window of recent messages and a running summary (see ``parley.bots.memory``); every
turn is ``[summarise if the window overflowed] -> chat``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AnyMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from parley.bots.context import GraphContext
from parley.bots.memory import overflow_cut, removals, summarise


class AssistantState(TypedDict):
    """The graph state: a bounded window of messages and the summary of everything before it."""

    messages: Annotated[list[AnyMessage], add_messages]
    summary: str


def build_graph(ctx: GraphContext) -> StateGraph[AssistantState, Any, Any, Any]:
    """The assistant graph, uncompiled: Parley compiles it with its checkpointer."""
    settings = ctx.settings
    model = ctx.model

    def route(state: AssistantState) -> Literal["summarise", "chat"]:
        cut = overflow_cut(
            state["messages"],
            max_messages=settings.memory_max_messages,
            keep=settings.memory_keep_messages,
        )
        return "summarise" if cut else "chat"

    async def summarise_node(state: AssistantState) -> dict[str, Any]:
        messages = state["messages"]
        cut = overflow_cut(
            messages,
            max_messages=settings.memory_max_messages,
            keep=settings.memory_keep_messages,
        )
        folded = messages[:cut]
        summary = await summarise(
            model,
            previous=state.get("summary", ""),
            messages=folded,
            max_chars=settings.memory_max_summary_chars,
        )
        return {"summary": summary, "messages": removals(folded)}

    async def chat_node(state: AssistantState) -> dict[str, Any]:
        system = settings.system_prompt
        summary = state.get("summary", "")
        if summary:
            system += "\n\nSummary of the conversation so far:\n" + summary
        reply = await model.ainvoke([SystemMessage(system), *state["messages"]])
        return {"messages": [reply]}

    builder: StateGraph[AssistantState, Any, Any, Any] = StateGraph(AssistantState)
    builder.add_node("summarise", summarise_node)
    builder.add_node("chat", chat_node)
    builder.add_conditional_edges(START, route)
    builder.add_edge("summarise", "chat")
    builder.add_edge("chat", END)
    return builder
