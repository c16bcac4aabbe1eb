from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from parley.bots.assistant import build_graph
from parley.bots.memory import overflow_cut, render_for_summary
from parley.core.context import GraphContext
from parley.models.scripted import ScriptedChatModel
from parley.settings import Settings
from parley.storage.checkpointer import sqlite_checkpointer


def _conversation(turns: int) -> list[Any]:
    messages: list[Any] = []
    for i in range(turns):
        messages += [HumanMessage(f"q{i}", id=f"h{i}"), AIMessage(f"a{i}", id=f"a{i}")]
    return messages


def test_no_cut_while_the_window_fits() -> None:
    assert overflow_cut(_conversation(5), max_messages=10, keep=4) == 0


def test_cut_keeps_the_newest_messages() -> None:
    messages = _conversation(6)  # 12 messages
    cut = overflow_cut(messages, max_messages=10, keep=4)
    assert cut == 8
    assert isinstance(messages[cut], HumanMessage)


def test_cut_never_separates_a_tool_call_from_its_result() -> None:
    messages: list[Any] = [
        *_conversation(4),
        HumanMessage("order", id="h-order"),
        AIMessage("", tool_calls=[{"name": "buy", "args": {}, "id": "t1"}], id="a-call"),
        ToolMessage("done", tool_call_id="t1", id="tool"),
        AIMessage("ordered", id="a-done"),
    ]
    # keep=3 would open the window on the ToolMessage; the cut moves back to the user's message.
    cut = overflow_cut(messages, max_messages=10, keep=3)
    assert messages[cut].id == "h-order"


def test_render_for_summary_names_the_speakers() -> None:
    text = render_for_summary(
        [
            HumanMessage("hi"),
            AIMessage("", tool_calls=[{"name": "buy", "args": {}, "id": "t"}]),
            AIMessage("hello"),
        ]
    )
    assert text.splitlines() == ["User: hi", "Assistant: (called buy)", "Assistant: hello"]


async def test_assistant_state_stays_bounded_and_keeps_a_summary(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, memory_max_messages=8, memory_keep_messages=4)
    model = ScriptedChatModel()
    async with sqlite_checkpointer(tmp_path / "cp.sqlite") as saver:
        graph = build_graph(GraphContext(model=model, settings=settings)).compile(checkpointer=saver)
        config: Any = {"configurable": {"thread_id": "t"}}
        sizes = []
        for i in range(30):
            state = await graph.ainvoke({"messages": [HumanMessage(f"message {i}", id=f"m{i}")]}, config)
            sizes.append(len(state["messages"]))
            assert state["messages"][-1].content == f"Echo: message {i}"
        assert max(sizes) <= 8
        assert state["summary"]
        assert len(state["summary"]) <= settings.memory_max_summary_chars


async def test_summary_is_capped_even_if_the_model_rambles(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, memory_max_messages=4, memory_keep_messages=2, memory_max_summary_chars=100
    )
    model = ScriptedChatModel(max_echo_chars=10_000)
    async with sqlite_checkpointer(tmp_path / "cp.sqlite") as saver:
        graph = build_graph(GraphContext(model=model, settings=settings)).compile(checkpointer=saver)
        config: Any = {"configurable": {"thread_id": "t"}}
        for i in range(10):
            state = await graph.ainvoke({"messages": [HumanMessage("blah " * 100 + str(i))]}, config)
        assert 0 < len(state["summary"]) <= 100
