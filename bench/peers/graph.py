"""The graph every contender of ``python -m bench peers`` serves: Parley (``PARLEY_GRAPH``), LangGraph's
server and Aegra (their config files name this file by path), so that only the serving differs.

    START ─▶ act ─▶ agent ─▶ END

- ``act`` is the turn's side effect: with ``PEERS_EFFECTS_FILE`` set it appends one line (the thread and
  the user's message) to that file each time it runs, so the crash workload can count how many times a
  turn's effect ran across a SIGKILL and a restart (as tests/graphs/chaos.py logs its executions).
- ``agent`` asks Parley's ``ScriptedChatModel`` for the reply: it echoes the message, and obeys its inline
  directives (``[[sleep:S]]`` holds the turn while the crash workload kills the server).

Only Parley's scripted model and LangGraph are imported, so the peers' virtualenvs need Parley installed
without its dependencies (bench/peers/install.py). ``plain`` is the unbounded ``MessagesState`` graph the
long-session workload compares with the bundled assistant.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph

from parley.models.scripted import ScriptedChatModel

EFFECTS_ENV = "PEERS_EFFECTS_FILE"


def effect_line(thread_id: str, text: str) -> str:
    """The line ``act`` appends for one run (the crash workload looks for it)."""
    return f"{thread_id}\t{text}\n"


async def act(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    path = os.environ.get(EFFECTS_ENV)
    if path:
        last = next((m for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), None)
        text = str(last.content) if last is not None else ""
        line = effect_line(str(config["configurable"]["thread_id"]), text)
        # In a thread: file I/O on the event loop would stall every other turn (and ``langgraph dev``
        # refuses blocking calls in async code).
        await asyncio.to_thread(_append, path, line)
    return {}


def _append(path: str, line: str) -> None:
    # One write of one short line in append mode: lines from concurrent turns do not mix.
    with open(path, "a", encoding="utf-8") as log:
        log.write(line)


def _agent(model: ScriptedChatModel) -> Any:
    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    return agent


def build_graph() -> StateGraph[MessagesState, Any, Any, Any]:
    """The side effect, then the model's reply."""
    builder: StateGraph[MessagesState, Any, Any, Any] = StateGraph(MessagesState)
    builder.add_node("act", act)
    builder.add_node("agent", _agent(ScriptedChatModel()))
    builder.add_edge(START, "act")
    builder.add_edge("act", "agent")
    builder.add_edge("agent", END)
    return builder


def build_plain() -> StateGraph[MessagesState, Any, Any, Any]:
    """One node: the model over the whole conversation, every message kept in the state."""
    builder: StateGraph[MessagesState, Any, Any, Any] = StateGraph(MessagesState)
    builder.add_node("agent", _agent(ScriptedChatModel()))
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    return builder


# The peers load a graph from a module attribute; building it has no side effect (no I/O, no connection).
graph = build_graph()
