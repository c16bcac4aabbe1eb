"""Bounded memory: a window of recent messages plus a running summary the model writes.

LangGraph stores the whole ``messages`` channel again in every checkpoint where it changed, so a state
that keeps every message makes storage grow with the square of the conversation and each turn slower
than the last. Keeping a window makes per-turn cost flat; the full transcript lives in Parley's own
table, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
)
from langchain_core.runnables import Runnable

SUMMARY_INSTRUCTIONS = (
    "You maintain a running summary of a conversation between a user and an assistant. "
    "Rewrite the summary so that it includes the new messages below. Keep facts, names, numbers, "
    "decisions and open questions; drop pleasantries. Answer with the summary only."
)


def overflow_cut(messages: Sequence[BaseMessage], *, max_messages: int, keep: int) -> int:
    """How many of the oldest messages to fold into the summary (0: the window still fits).

    The cut moves back to the start of a user message so that a tool call is never separated from
    its result and the window always opens on something the user said.
    """
    if len(messages) <= max_messages:
        return 0
    cut = len(messages) - keep
    while cut > 0 and not isinstance(messages[cut], HumanMessage):
        cut -= 1
    return cut


def render_for_summary(messages: Sequence[BaseMessage]) -> str:
    """The messages as plain lines the summariser reads."""
    lines = []
    for message in messages:
        role = {"human": "User", "ai": "Assistant", "tool": "Tool"}.get(message.type, message.type)
        text = str(message.text)
        if isinstance(message, AIMessage) and message.tool_calls and not text:
            text = "(called " + ", ".join(c["name"] for c in message.tool_calls) + ")"
        lines.append(f"{role}: {text}")
    return "\n".join(lines)


async def summarise(
    model: Runnable[Any, BaseMessage],
    *,
    previous: str,
    messages: Sequence[BaseMessage],
    max_chars: int,
) -> str:
    """The previous summary extended with ``messages``, at most ``max_chars`` long."""
    prompt = [
        SystemMessage(SUMMARY_INSTRUCTIONS),
        HumanMessage(
            f"Current summary:\n{previous or '(none)'}\n\nNew messages:\n{render_for_summary(messages)}"
        ),
    ]
    result = await model.ainvoke(prompt)
    text = str(result.text).strip()
    # A runaway model must not grow the state it was asked to bound.
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def removals(messages: Sequence[AnyMessage]) -> list[RemoveMessage]:
    """``add_messages`` updates that drop these messages from the state."""
    return [RemoveMessage(id=m.id) for m in messages if m.id is not None]
