"""The local model's generation settings, on the real model: they reach llama.cpp, the defaults answer an
everyday question, and the repetition stop ends a loop — streamed or not — with the cut reply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage

from parley.models.factory import build_chat_model
from parley.models.local import LocalChatModel, bundled_model_path
from parley.models.repetition import loop_cut
from parley.settings import DEFAULT_SYSTEM_PROMPT, Settings
from tests.conftest import AppHarness

QUESTION = "What is the capital of France?"


def _local(**fields: Any) -> LocalChatModel:
    model = LocalChatModel(model_path=bundled_model_path(), pool_size=1, threads_per_instance=2, **fields)
    model.load()
    return model


def _words_loop(text: str) -> bool:
    return loop_cut(text.split(), ngram=2, repeats=4, window=16) is not None


def test_the_settings_reach_the_local_model(tmp_path: Path) -> None:
    model = build_chat_model(
        Settings(
            data_dir=tmp_path,
            model="local",
            local_instances=1,
            local_temperature=0.7,
            local_top_k=12,
            local_top_p=0.8,
            local_repeat_penalty=1.25,
            local_seed=1234,
            local_loop_ngram=5,
            local_loop_repeats=6,
        )
    )
    assert isinstance(model, LocalChatModel)
    assert (model.temperature, model.top_k, model.top_p, model.repeat_penalty) == (0.7, 12, 0.8, 1.25)
    assert (model.seed, model.loop_ngram, model.loop_repeats) == (1234, 5, 6)
    # PARLEY_MODEL_TEMPERATURE still wins for every model; a seed of -1 is a new random one each reply.
    other = build_chat_model(
        Settings(data_dir=tmp_path, model="local", local_instances=1, model_temperature=0.0, local_seed=-1)
    )
    assert isinstance(other, LocalChatModel)
    assert other.temperature == 0.0
    assert other.seed is None


def test_the_seed_and_top_k_reach_llama_cpp() -> None:
    # At a high temperature only the seed makes two replies alike; top-k 1 leaves one candidate per
    # token whatever the temperature, which is what temperature 0 picks.
    question = [HumanMessage("Tell me a story.")]
    hot = _local(max_tokens=16, temperature=1.5, top_k=0, top_p=1.0, seed=7)
    first, again = str(hot.invoke(question).content), str(hot.invoke(question).content)
    assert first == again
    reseeded = _local(max_tokens=16, temperature=1.5, top_k=0, top_p=1.0, seed=8)
    assert str(reseeded.invoke(question).content) != first
    one_candidate = _local(max_tokens=16, temperature=1.5, top_k=1, seed=9)
    greedy = _local(max_tokens=16, temperature=0.0)
    assert str(one_candidate.invoke(question).content) == str(greedy.invoke(question).content)


async def test_a_loop_is_cut_and_ended_streamed_or_not() -> None:
    # The old settings (greedy, no repeat penalty, Parley's prompt) loop on this question to the limit.
    # A fresh instance for each run: llama.cpp's reuse of the previous prompt's cache can change a close
    # call, and these compare one run with another.
    question = [SystemMessage(DEFAULT_SYSTEM_PROMPT), HumanMessage(QUESTION)]
    chunks = [c async for c in _local(max_tokens=200, temperature=0.0, loop_repeats=4).astream(question)]
    streamed = "".join(str(c.content) for c in chunks)
    last = chunks[-1]
    assert isinstance(last, AIMessageChunk)
    assert last.response_metadata["finish_reason"] == "repetition"
    assert last.usage_metadata is not None
    assert last.usage_metadata["output_tokens"] < 200  # generation stopped at the loop
    assert streamed.strip()
    assert not _words_loop(streamed)
    reply = await _local(max_tokens=200, temperature=0.0, loop_repeats=4).ainvoke(question)
    assert isinstance(reply, AIMessage)
    assert str(reply.content) == streamed.strip()  # not streamed, the same cut reply
    assert reply.response_metadata["finish_reason"] == "repetition"
    looped = str(_local(max_tokens=200, temperature=0.0).invoke(question).content)
    assert _words_loop(looped)
    assert looped.startswith(streamed.strip())


@pytest.mark.sqlite_only  # about the model, not storage
async def test_the_default_local_model_knows_the_capital_of_france(
    harness_factory: Any, make_settings: Any
) -> None:
    # Parley's defaults end to end: the assistant graph, the local model's system prompt and sampling.
    h: AppHarness = await harness_factory(make_settings(model="local", default_wait=60))
    for _ in range(2):  # a fixed seed: the same answer every time
        body = (await h.chat(message=QUESTION)).json()
        assert body["status"] == "completed", body
        assert "paris" in body["reply"].lower()
        assert not _words_loop(body["reply"])
        assert body["usage"]["output_tokens"] < 256
