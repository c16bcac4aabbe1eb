"""The offline local model: load time, time to first token, tokens per second with 1 and 2 concurrent
sessions, and what a turn through Parley costs on top of the bare model call — all in one run."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import HumanMessage, SystemMessage

from bench.common import parley_server
from parley.models.local import LocalChatModel, bundled_model_path
from parley.settings import DEFAULT_SYSTEM_PROMPT

PROMPT = "Tell me three facts about the moon."
MAX_TOKENS = 64


async def _generate(model: LocalChatModel) -> tuple[float, float, int]:
    """(seconds to first token, total seconds, tokens) of one generation."""
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    async for chunk in model.astream([SystemMessage(DEFAULT_SYSTEM_PROMPT), HumanMessage(PROMPT)]):
        if chunk.content:
            tokens += 1
            if first is None:
                first = time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started, tokens


def load_time(model: LocalChatModel) -> float:
    """Seconds to load the model's instances."""
    started = time.perf_counter()
    model.load()
    return time.perf_counter() - started


def run(workdir: Path, *, rounds: int = 5) -> dict[str, Any]:
    path = bundled_model_path()
    single = LocalChatModel(
        model_path=path, max_tokens=MAX_TOKENS, temperature=0.0, pool_size=1, threads_per_instance=2
    )
    load_seconds = load_time(single)
    pair = LocalChatModel(
        model_path=path, max_tokens=MAX_TOKENS, temperature=0.0, pool_size=2, threads_per_instance=1
    )
    pair.load()

    async def measure() -> dict[str, Any]:
        await _generate(single)  # warm-up
        one = [await _generate(single) for _ in range(rounds)]
        two = []
        for _ in range(rounds):
            started = time.perf_counter()
            results = await asyncio.gather(_generate(pair), _generate(pair))
            two.append((sum(r[2] for r in results), time.perf_counter() - started))
        return {"one": one, "two": two}

    measured = asyncio.run(measure())
    one_tps = statistics.median(tokens / total for _, total, tokens in measured["one"])
    two_tps = statistics.median(tokens / total for tokens, total in measured["two"])
    ttft = statistics.median(first for first, _, _ in measured["one"])
    bare = statistics.median(total for _, total, _ in measured["one"])

    # Parley on top: the same prompt as a turn through the real server (assistant graph, local model).
    env = {
        "PARLEY_MODEL": "local",
        "PARLEY_LOCAL_MAX_TOKENS": str(MAX_TOKENS),
        "PARLEY_MODEL_TEMPERATURE": "0",
        "PARLEY_LOCAL_INSTANCES": "1",
        "PARLEY_LOCAL_THREADS": "2",
    }
    turns = []
    with (
        parley_server(workdir / "local-parley", **env) as server,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        for i in range(rounds + 1):
            started = time.perf_counter()
            body = client.post(
                "/v1/chat", json={"user_id": f"bench{i}", "message": PROMPT, "wait": 60}
            ).json()
            elapsed = time.perf_counter() - started
            assert body["status"] == "completed", body
            if i:
                turns.append((elapsed, body["usage"]["output_tokens"]))
    # Per token, since the two generations may not stop at the same length.
    parley_per_token = statistics.median(t / max(n, 1) for t, n in turns)
    bare_per_token = statistics.median(total / max(tokens, 1) for _, total, tokens in measured["one"])
    return {
        "load_seconds": round(load_seconds, 3),
        "time_to_first_token_ms": round(ttft * 1000, 1),
        "tokens_per_second_1_session": round(one_tps, 1),
        "tokens_per_second_2_sessions_total": round(two_tps, 1),
        "concurrency_gain": round(two_tps / one_tps, 2),
        "bare_generation_seconds": round(bare, 3),
        "parley_turn_seconds": round(statistics.median(t for t, _ in turns), 3),
        "parley_over_bare_per_token": round(parley_per_token / bare_per_token, 3),
    }
