from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage

from parley.models.scripted import (
    ECHO_PREFIX,
    ScriptedChatModel,
    ScriptedModelError,
    ScriptStep,
    load_script,
)


async def test_echoes_the_last_user_message_by_default() -> None:
    model = ScriptedChatModel()
    reply = await model.ainvoke([SystemMessage("sys"), HumanMessage("first"), HumanMessage("hello")])
    assert reply.content == ECHO_PREFIX + "hello"
    assert model.calls == 1


async def test_echo_is_bounded() -> None:
    model = ScriptedChatModel(max_echo_chars=10)
    reply = await model.ainvoke([HumanMessage("x" * 1000)])
    assert reply.content == ECHO_PREFIX + "x" * 10


async def test_replays_its_script_in_order_then_echoes() -> None:
    model = ScriptedChatModel(
        script=[
            ScriptStep(text="one"),
            ScriptStep(tool_calls=[{"name": "lookup", "args": {"q": "mugs"}, "id": "c1"}]),
            ScriptStep(error="error"),
        ]
    )
    first = await model.ainvoke([HumanMessage("hi")])
    second = await model.ainvoke([HumanMessage("hi")])
    assert first.content == "one"
    assert isinstance(second, AIMessage)
    assert second.tool_calls == [{"name": "lookup", "args": {"q": "mugs"}, "id": "c1", "type": "tool_call"}]
    with pytest.raises(ScriptedModelError):
        await model.ainvoke([HumanMessage("hi")])
    assert (await model.ainvoke([HumanMessage("hi")])).content == ECHO_PREFIX + "hi"


async def test_script_delay_is_awaited_not_blocking() -> None:
    model = ScriptedChatModel(script=[ScriptStep(text="late", delay=0.2)])
    started = time.monotonic()
    reply = await model.ainvoke([HumanMessage("hi")])
    assert reply.content == "late"
    assert time.monotonic() - started >= 0.2


async def test_directives_in_the_message_control_the_turn() -> None:
    model = ScriptedChatModel()
    with pytest.raises(ScriptedModelError):
        await model.ainvoke([HumanMessage("[[fail]] please")])
    with pytest.raises(TimeoutError):
        await model.ainvoke([HumanMessage("[[fail:timeout]]")])
    assert (await model.ainvoke([HumanMessage("[[reply:fixed answer]]")])).content == "fixed answer"
    assert (await model.ainvoke([HumanMessage("[[sleep:0.01]] hi there")])).content == (
        ECHO_PREFIX + "hi there"
    )


async def test_streams_word_tokens_that_add_up_to_the_reply() -> None:
    model = ScriptedChatModel(script=[ScriptStep(text="three little words")])
    chunks = [chunk async for chunk in model.astream([HumanMessage("hi")])]
    assert len(chunks) >= 3
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks) == "three little words"


async def test_a_step_paces_its_streamed_tokens() -> None:
    model = ScriptedChatModel(script=[ScriptStep(text="one two three", pace=0.05), ScriptStep(text="a b c")])
    arrivals: list[float] = []
    async for _ in model.astream([HumanMessage("hi")]):
        arrivals.append(time.monotonic())
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(gaps) == 2
    assert min(gaps) >= 0.045
    # The pace is the step's own: the next step streams at the model's (none).
    started = time.monotonic()
    assert "".join([str(c.content) async for c in model.astream([HumanMessage("hi")])]) == "a b c"
    assert time.monotonic() - started < 0.045


async def test_streamed_tool_calls_survive_aggregation() -> None:
    model = ScriptedChatModel(script=[ScriptStep(tool_calls=[{"name": "t", "args": {"a": 1}, "id": "x"}])])
    total = None
    async for chunk in model.astream([HumanMessage("hi")]):
        total = chunk if total is None else total + chunk
    assert total is not None
    assert [(c["name"], c["args"]) for c in total.tool_calls] == [("t", {"a": 1})]


def test_sync_invoke_works_too() -> None:
    model = ScriptedChatModel(script=[ScriptStep(text="sync")])
    assert model.invoke([HumanMessage("hi")]).content == "sync"


async def test_bind_tools_accepts_tools_like_a_provider() -> None:
    def lookup(q: str) -> str:
        """Look something up."""
        return q

    bound = ScriptedChatModel().bind_tools([lookup])
    reply = await bound.ainvoke([HumanMessage("hello")])
    assert reply.content == ECHO_PREFIX + "hello"


def test_load_script_reads_json_steps(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text('[{"text": "a"}, {"error": "timeout", "delay": 0.1}]')
    steps = load_script(path)
    assert steps == [ScriptStep(text="a"), ScriptStep(error="timeout", delay=0.1)]
    path.write_text('{"text": "not a list"}')
    with pytest.raises(ValueError, match="list"):
        load_script(path)


async def test_clock_tokens_tell_the_time_each_was_emitted() -> None:
    model = ScriptedChatModel()
    received: list[tuple[float, float]] = []
    before = time.time()
    async for chunk in model.astream([HumanMessage("[[pace:0.05]] [[clock:4]] what time is it?")]):
        received.append((float(str(chunk.content)), time.time()))
    assert len(received) == 4
    stamps = [stamp for stamp, _ in received]
    # Each is the moment it was emitted, after its pause: in order, a pace apart, never later than
    # its arrival here.
    assert before + 0.05 <= stamps[0]
    assert all(later - earlier >= 0.045 for earlier, later in itertools.pairwise(stamps))
    assert all(stamp <= arrived for stamp, arrived in received)


async def test_clock_tokens_are_space_separated_timestamps_with_microseconds() -> None:
    model = ScriptedChatModel()
    chunks = [str(c.content) async for c in model.astream([HumanMessage("[[clock:3]]")])]
    assert len(chunks) == 3
    assert all(re.fullmatch(r"\d+\.\d{6} ", c) for c in chunks)
    reply = await model.ainvoke([HumanMessage("[[clock:2]]")])
    assert re.fullmatch(r"(\d+\.\d{6} ){2}", str(reply.content))
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] == 2
