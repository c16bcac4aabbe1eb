"""The same one-step echo bot written as each kind of program Parley hosts, for ``python -m bench graphs``:
a ``StateGraph`` with ``messages``, a Functional API ``@entrypoint`` carrying the conversation in
``previous``, and a state without ``messages`` hosted through a mapping."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.func import entrypoint
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from parley.hosting import host


class _Messages(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _echo(state: _Messages) -> dict[str, Any]:
    return {"messages": [AIMessage(f"Echo: {state['messages'][-1].content}")]}


state_echo: StateGraph[_Messages, Any, Any, Any] = StateGraph(_Messages)
state_echo.add_node("echo", _echo)
state_echo.add_edge(START, "echo")
state_echo.add_edge("echo", END)


@entrypoint()
async def functional_echo(
    inputs: dict[str, Any], *, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    history = [*(previous or {}).get("messages", []), *inputs["messages"]]
    return {"messages": [*history, AIMessage(f"Echo: {history[-1].content}")]}


class _Question(TypedDict, total=False):
    question: str
    answer: str
    asked: Annotated[list[str], operator.add]


def _answer(state: _Question) -> dict[str, Any]:
    return {"answer": f"Echo: {state['question']}", "asked": [state["question"]]}


_mapped: StateGraph[_Question, Any, Any, Any] = StateGraph(_Question)
_mapped.add_node("answer", _answer)
_mapped.add_edge(START, "answer")
_mapped.add_edge("answer", END)
mapped_echo = host(_mapped, input="question", reply="answer")
