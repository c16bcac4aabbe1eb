"""A user-supplied graph for tests: it reports what it saw, so tests can check order and overlap.

Its reply is JSON: how many user messages the state holds (``seen``), the last one (``last``), and the
most turns it has seen running at once in one session (``max_session``) and overall (``max_global``), and
how many times its node has run for the session (``runs``).
A user message may carry ``[[sleep:S]]`` to keep the turn busy for S seconds.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

_SLEEP = re.compile(r"\[\[sleep:([0-9.]+)\]\]")
_in_flight: defaultdict[str, int] = defaultdict(int)
_max_session: defaultdict[str, int] = defaultdict(int)
_runs: defaultdict[str, int] = defaultdict(int)
_global = {"now": 0, "max": 0}


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


async def respond(state: State, config: RunnableConfig) -> dict[str, Any]:
    thread = config["configurable"]["thread_id"]
    _runs[thread] += 1
    _in_flight[thread] += 1
    _global["now"] += 1
    _max_session[thread] = max(_max_session[thread], _in_flight[thread])
    _global["max"] = max(_global["max"], _global["now"])
    try:
        humans = [m for m in state["messages"] if isinstance(m, HumanMessage)]
        last = str(humans[-1].content) if humans else ""
        match = _SLEEP.search(last)
        await asyncio.sleep(float(match[1]) if match else 0.005)
        reply = {
            "seen": len(humans),
            "last": last,
            "max_session": _max_session[thread],
            "max_global": _global["max"],
            "runs": _runs[thread],
        }
        return {"messages": [AIMessage(json.dumps(reply))]}
    finally:
        _in_flight[thread] -= 1
        _global["now"] -= 1


graph: StateGraph[State, Any, Any, Any] = StateGraph(State)
graph.add_node("respond", respond)
graph.add_edge(START, "respond")
graph.add_edge("respond", END)

compiled = graph.compile()


class _NoMessages(TypedDict):
    count: int


def _bump(state: _NoMessages) -> dict[str, int]:
    return {"count": state.get("count", 0) + 1}


no_messages: StateGraph[_NoMessages, Any, Any, Any] = StateGraph(_NoMessages)
no_messages.add_node("bump", _bump)
no_messages.add_edge(START, "bump")
no_messages.add_edge("bump", END)
