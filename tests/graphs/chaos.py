"""A user-supplied graph for the chaos test: three steps, the middle one with a side effect.

``act`` records every execution in ``runs`` and applies its effect once per message in ``effects``: the
effect's key is derived from the message id that Parley puts in the checkpoint metadata, and the insert
is idempotent, so re-running the step after a crash finds the earlier effect instead of acting twice.
Both tables live in the SQLite file named by ``CHAOS_EFFECTS_DB``.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    effect: str


def open_effects(path: str | None = None) -> sqlite3.Connection:
    """The effects database, with its tables (tests call it first, so that they can poll it)."""
    conn = sqlite3.connect(path or os.environ["CHAOS_EFFECTS_DB"], isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS runs (message_id TEXT NOT NULL)")
    conn.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, message_id TEXT NOT NULL)")
    return conn


async def plan(state: State) -> dict[str, Any]:
    await asyncio.sleep(random.uniform(0.005, 0.03))
    return {}


async def act(state: State, config: RunnableConfig) -> dict[str, Any]:
    message_id = config["metadata"]["parley_message_id"]
    key = f"{message_id}:act"
    with open_effects() as conn:
        conn.execute("INSERT INTO runs (message_id) VALUES (?)", (message_id,))
        await asyncio.sleep(random.uniform(0.005, 0.03))
        conn.execute("INSERT OR IGNORE INTO effects (key, message_id) VALUES (?, ?)", (key, message_id))
    return {"effect": key}


async def reply(state: State) -> dict[str, Any]:
    last = next(m for m in reversed(state["messages"]) if isinstance(m, HumanMessage))
    # "[[slow]]" holds the last step long enough for a test to kill the server in the middle of it.
    await asyncio.sleep(3.0 if "[[slow]]" in str(last.content) else random.uniform(0.005, 0.03))
    return {"messages": [AIMessage(f"done: {last.content}")]}


graph: StateGraph[State, Any, Any, Any] = StateGraph(State)
graph.add_node("plan", plan)
graph.add_node("act", act)
graph.add_node("reply", reply)
graph.add_edge(START, "plan")
graph.add_edge("plan", "act")
graph.add_edge("act", "reply")
graph.add_edge("reply", END)
