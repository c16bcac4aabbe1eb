"""A user-supplied graph for the chaos test: three steps, the middle one with a side effect.

Every step logs each time it runs, so a test can tell a step resumed from one run again:

- ``step_runs`` gets a row when a step starts and ``step_ends`` one when its code has finished (append-only;
  a run without an end was cut by a crash). The step also adds ``"<message id>:<step>"`` to the state's
  ``steps`` channel, so the checkpoints show which steps LangGraph saved — those must never run again.
- ``act`` applies its effect once per message in ``effects`` (keyed by the message id that Parley puts in
  the checkpoint metadata, inserted with ``INSERT OR IGNORE``), and logs in ``effect_executions``, in the
  same transaction, every time the effect code ran and whether it applied the effect or found it there.
  The key alone would hide a repeated execution; the executions log shows it.

The tables live in the SQLite file named by ``CHAOS_EFFECTS_DB``.
"""

from __future__ import annotations

import asyncio
import operator
import os
import random
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing, contextmanager
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

STEPS = ("plan", "act", "reply")


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    effect: str
    steps: Annotated[list[str], operator.add]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS step_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, step TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS step_ends (run_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, message_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS effect_executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, message_id TEXT NOT NULL,
    applied INTEGER NOT NULL);
"""


def open_log(path: str | None = None) -> sqlite3.Connection:
    """The log database, with its tables (tests call it first, so that they can poll it)."""
    conn = sqlite3.connect(path or os.environ["CHAOS_EFFECTS_DB"], isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(_SCHEMA)
    return conn


@contextmanager
def _log() -> Iterator[sqlite3.Connection]:
    with closing(open_log()) as conn:
        yield conn


def _pause() -> float:
    return random.uniform(0.005, 0.03)


Body = Callable[[State, str, int], Awaitable[dict[str, Any]]]


def _logged(name: str, body: Body) -> Callable[[State, RunnableConfig], Awaitable[dict[str, Any]]]:
    async def step(state: State, config: RunnableConfig) -> dict[str, Any]:
        message_id = config["metadata"]["parley_message_id"]
        with _log() as conn:
            run_id = conn.execute(
                "INSERT INTO step_runs (message_id, step) VALUES (?, ?)", (message_id, name)
            ).lastrowid
        assert run_id is not None
        update = await body(state, message_id, run_id)
        with _log() as conn:
            conn.execute("INSERT INTO step_ends (run_id) VALUES (?)", (run_id,))
        return {**update, "steps": [f"{message_id}:{name}"]}

    return step


async def plan(state: State, message_id: str, run_id: int) -> dict[str, Any]:
    await asyncio.sleep(_pause())
    return {}


async def act(state: State, message_id: str, run_id: int) -> dict[str, Any]:
    key = f"{message_id}:act"
    # A crash here cuts the step before its effect: running it again is safe and necessary.
    await asyncio.sleep(_pause())
    with _log() as conn:
        conn.execute("BEGIN IMMEDIATE")
        applied = conn.execute(
            "INSERT OR IGNORE INTO effects (key, message_id) VALUES (?, ?)", (key, message_id)
        ).rowcount
        conn.execute(
            "INSERT INTO effect_executions (run_id, message_id, applied) VALUES (?, ?, ?)",
            (run_id, message_id, applied),
        )
        conn.execute("COMMIT")
    # A crash here, after the effect and before LangGraph saves the step, is the window in which the step
    # runs again and must find its effect made: the only repeat durable execution allows.
    await asyncio.sleep(_pause())
    return {"effect": key}


async def reply(state: State, message_id: str, run_id: int) -> dict[str, Any]:
    last = next(m for m in reversed(state["messages"]) if isinstance(m, HumanMessage))
    # "[[slow]]" holds the last step long enough for a test to kill the server in the middle of it.
    await asyncio.sleep(3.0 if "[[slow]]" in str(last.content) else _pause())
    return {"messages": [AIMessage(f"done: {last.content}")]}


graph: StateGraph[State, Any, Any, Any] = StateGraph(State)
graph.add_node("plan", _logged("plan", plan))
graph.add_node("act", _logged("act", act))
graph.add_node("reply", _logged("reply", reply))
graph.add_edge(START, "plan")
graph.add_edge("plan", "act")
graph.add_edge("act", "reply")
graph.add_edge("reply", END)
