"""A user-supplied graph for the cluster test: every run of its one step is written to a ledger shared by
all processes, so a test can see which process ran which turn, when, and whether turns of one session ever
overlapped or ran twice.

``runs`` gets a row when the step starts (message, session, process id, system-wide monotonic time) and its
``ended`` time when the step's code has finished; a run without an end was cut (its process was killed).
The ledger is the SQLite file named by ``LEDGER_DB``. A user message may carry ``[[sleep:S]]``.
The reply is JSON: how many user messages the state holds (``seen``) and the last one (``last``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import time
from contextlib import closing
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

_SLEEP = re.compile(r"\[\[sleep:([0-9.]+)\]\]")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, "
    "session_id TEXT NOT NULL, pid INTEGER NOT NULL, started REAL NOT NULL, ended REAL)"
)


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def open_ledger(path: str | None = None) -> sqlite3.Connection:
    """The ledger, with its table (the test makes it first, so it can read it at any time)."""
    conn = sqlite3.connect(path or os.environ["LEDGER_DB"], isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(_SCHEMA)
    return conn


def _write(sql: str, params: tuple[Any, ...]) -> int:
    with closing(open_ledger()) as conn:
        cursor = conn.execute(sql, params)
        return int(cursor.lastrowid or 0)


async def respond(state: State, config: RunnableConfig) -> dict[str, Any]:
    message_id = str((config.get("metadata") or {})["parley_message_id"])
    session_id = str(config["configurable"]["thread_id"])
    run = _write(
        "INSERT INTO runs (message_id, session_id, pid, started) VALUES (?, ?, ?, ?)",
        (message_id, session_id, os.getpid(), time.monotonic()),
    )
    humans = [m for m in state["messages"] if isinstance(m, HumanMessage)]
    last = str(humans[-1].content) if humans else ""
    match = _SLEEP.search(last)
    await asyncio.sleep(float(match[1]) if match else 0.01)
    _write("UPDATE runs SET ended = ? WHERE id = ?", (time.monotonic(), run))
    return {"messages": [AIMessage(json.dumps({"seen": len(humans), "last": last}))]}


graph: StateGraph[State, Any, Any, Any] = StateGraph(State)
graph.add_node("respond", respond)
graph.add_edge(START, "respond")
graph.add_edge("respond", END)
