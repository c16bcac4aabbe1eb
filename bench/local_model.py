"""The offline local model: load time, time to first token, tokens per second with 1 and 2 concurrent
sessions, and what a turn through Parley costs on top of the bare model call — all in one run. Time to
first token and tokens per second are measured with the settings in use (Parley's defaults) and with the
old ones (``bench.quality.OLD_SETTINGS``), in alternation, so that the two compare within one run."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import HumanMessage, SystemMessage

from bench.common import parley_server
from bench.quality import OLD_SETTINGS
from parley.models.factory import build_chat_model
from parley.models.local import LocalChatModel
from parley.settings import Settings

PROMPT = "Tell me three facts about the moon."
MAX_TOKENS = 64


def _settings(*, instances: int, threads: int, **overrides: Any) -> Settings:
    return Settings(
        model="local",
        local_max_tokens=MAX_TOKENS,
        local_instances=instances,
        local_threads=threads,
        **overrides,
    )


def _model(settings: Settings) -> LocalChatModel:
    """The local model as the service builds it from these settings (loaded)."""
    model = build_chat_model(settings)
    assert isinstance(model, LocalChatModel)
    return model


async def _generate(model: LocalChatModel, system: str) -> tuple[float, float, int]:
    """(seconds to first token, total seconds, tokens) of one generation."""
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    async for chunk in model.astream([SystemMessage(system), HumanMessage(PROMPT)]):
        if chunk.content:
            tokens += 1
            if first is None:
                first = time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started, tokens


def load_time(settings: Settings) -> tuple[LocalChatModel, float]:
    """The model these settings make, and the seconds it took to build and load."""
    started = time.perf_counter()
    model = _model(settings)
    return model, time.perf_counter() - started


def _rates(runs: list[tuple[float, float, int]]) -> dict[str, float]:
    return {
        "time_to_first_token_ms": round(statistics.median(first for first, _, _ in runs) * 1000, 1),
        "tokens_per_second_1_session": round(statistics.median(n / total for _, total, n in runs), 1),
        "median_tokens": statistics.median(n for _, _, n in runs),
    }


def run(workdir: Path, *, rounds: int = 5) -> dict[str, Any]:
    chosen_settings = _settings(instances=1, threads=2)
    old_settings = _settings(instances=1, threads=2, **OLD_SETTINGS)
    single, load_seconds = load_time(chosen_settings)
    old = _model(old_settings)
    pair = _model(_settings(instances=2, threads=1))

    async def measure() -> dict[str, Any]:
        await _generate(single, chosen_settings.system_prompt)  # warm-up
        await _generate(old, old_settings.system_prompt)
        one: list[tuple[float, float, int]] = []
        one_old: list[tuple[float, float, int]] = []
        for _ in range(rounds):
            one.append(await _generate(single, chosen_settings.system_prompt))
            one_old.append(await _generate(old, old_settings.system_prompt))
        two = []
        for _ in range(rounds):
            started = time.perf_counter()
            results = await asyncio.gather(
                _generate(pair, chosen_settings.system_prompt),
                _generate(pair, chosen_settings.system_prompt),
            )
            two.append((sum(r[2] for r in results), time.perf_counter() - started))
        return {"one": one, "one_old": one_old, "two": two}

    measured = asyncio.run(measure())
    chosen = _rates(measured["one"])
    before = _rates(measured["one_old"])
    one_tps = chosen["tokens_per_second_1_session"]
    two_tps = statistics.median(tokens / total for tokens, total in measured["two"])
    bare = statistics.median(total for _, total, _ in measured["one"])

    # Parley on top: the same prompt as a turn through the real server (assistant graph, local model).
    env = {
        "PARLEY_MODEL": "local",
        "PARLEY_LOCAL_MAX_TOKENS": str(MAX_TOKENS),
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
        **chosen,
        "old_settings": before,
        "tokens_per_second_2_sessions_total": round(two_tps, 1),
        "concurrency_gain": round(two_tps / one_tps, 2),
        "bare_generation_seconds": round(bare, 3),
        "parley_turn_seconds": round(statistics.median(t for t, _ in turns), 3),
        "parley_over_bare_per_token": round(parley_per_token / bare_per_token, 3),
    }
