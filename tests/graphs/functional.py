"""Functional API programs for tests: ``@entrypoint``s hosted like graphs.

``bot`` (async, with ``previous`` and ``@task``s) answers ``turn N: <text>``, N the number of user
messages the conversation holds — so a test sees ``previous`` carry it across turns. Each run of its
``remember`` task is logged in the SQLite file ``FUNCTIONAL_LOG`` names (when set), so a test can tell a
finished task from one run again. A message may carry:

- ``[[slow]]``: after ``remember``, a second task sleeps 3 s — time for a test to kill the process;
- ``[[confirm]]``: the entrypoint asks ``interrupt({"kind": "confirm", ...})`` and says what it was told;
- ``[[boom]]``: the entrypoint raises after its task (a permanent failure: the turn fails).

``sync_bot`` is a plain function with no ``previous``; ``plain`` returns a string.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from contextlib import closing
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.func import entrypoint, task
from langgraph.types import interrupt

from parley.hosting import host


def open_log(path: str | None = None) -> sqlite3.Connection:
    """The task log, with its table (tests call it first, so that they can poll it)."""
    conn = sqlite3.connect(path or os.environ["FUNCTIONAL_LOG"], isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS task_runs (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    return conn


@task
async def remember(text: str) -> str:
    """The side effect a crash must not repeat: logged every time it runs."""
    if path := os.environ.get("FUNCTIONAL_LOG"):
        with closing(open_log(path)) as log:
            log.execute("INSERT INTO task_runs (text) VALUES (?)", (text,))
    return text.strip()


@task
async def linger(seconds: float) -> None:
    await asyncio.sleep(seconds)


@entrypoint()
async def bot(inputs: dict[str, Any], *, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    history: list[AnyMessage] = [*(previous or {}).get("messages", []), *inputs["messages"]]
    text = await remember(str(inputs["messages"][-1].content))
    if "[[slow]]" in text:
        await linger(3.0)
    if "[[boom]]" in text:
        raise RuntimeError("boom")
    if "[[confirm]]" in text:
        answer = interrupt({"kind": "confirm", "question": "Go ahead?", "action": "echo", "args": {}})
        text = f"{text} (answer: {answer})"
    turns = sum(isinstance(m, HumanMessage) for m in history)
    return {"messages": [*history, AIMessage(f"turn {turns}: {text}")]}


@entrypoint()
def sync_bot(inputs: dict[str, Any]) -> dict[str, Any]:
    """Synchronous, without ``previous``: each turn sees only its own message."""
    return {"messages": [AIMessage(f"sync: {inputs['messages'][-1].content}")]}


@entrypoint()
async def plain(question: str, *, previous: int | None = None) -> entrypoint.final[str, int]:
    """Takes the text itself (through a mapping) and returns a string; ``previous`` counts the turns."""
    count = (previous or 0) + 1
    return entrypoint.final(value=f"#{count}: {question}", save=count)


plain_hosted = host(plain, input=lambda text: text, description="The text in, a string out.")
