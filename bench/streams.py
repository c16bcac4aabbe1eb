"""Event streams: how long a token takes from the model to the client, and how many streams one process
holds.

1. **Token delivery**: turns whose scripted model answers clock tokens (``[[clock:N]]``: each the
   wall-clock time it was emitted), paced like a fast model (``[[pace:S]]``), streamed with ``POST
   /v1/chat`` and ``Accept: text/event-stream``; a token's delay is its arrival here minus its emission
   there (one machine, one clock). The baseline, measured in the same run, is a bare sse-starlette app
   (bench/baseline_sse_app.py) emitting the same tokens at the same pace: uvicorn, sse-starlette, the
   socket and this client, with nothing of Parley in between. Parley is the embedded default (SQLite, the
   in-process runner) and, where PostgreSQL answers, PostgreSQL in-process and with the job queue (``parley
   serve --runner queue`` + ``parley worker``: every event crosses the relay). Contenders take turns
   stream by stream, so that the machine's drifting load hits all alike.
2. **Open streams** (bench/stream_capacity.py): idle streams held open against 100 active ones.

Parley runs with ``PARLEY_REVIEW_KEYWORDS=`` (none): with review keywords the bundled assistant holds a
draft's tokens until the turn ends, by design (docs/api.md), and there would be nothing live to measure.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench import stream_capacity
from bench.common import PostgresDatabases, baseline_sse_server, parley_deployment, percentile
from bench.scaleout import postgres_missing
from bench.sse_reader import STREAM, StreamResult, read_events

# A fast model's pace (100 tokens a second); a turn of 50 tokens then streams for half a second.
PACE_SECONDS = 0.01
TOKENS_PER_TURN = 50
ROUNDS = 16
# Turns of each contender before the timed ones: sessions created, code paths warm.
WARMUP_ROUNDS = 2
LIVE = {"PARLEY_REVIEW_KEYWORDS": ""}

Opener = Callable[[httpx.AsyncClient], Awaitable[StreamResult]]


def clock_message(tokens: int, pace: float) -> str:
    return f"[[pace:{pace}]] [[clock:{tokens}]] what time is it?"


def baseline_opener(url: str, *, tokens: int, pace: float) -> Opener:
    async def open_stream(client: httpx.AsyncClient) -> StreamResult:
        params: dict[str, Any] = {"tokens": tokens, "pace": pace}
        async with client.stream("GET", f"{url}/stream", params=params) as response:
            result = await read_events(response)
        assert result.kinds["token"] == tokens and result.last and result.last[0] == "done", result.kinds
        return result

    return open_stream


def parley_opener(url: str, *, tokens: int, pace: float) -> Opener:
    """Turns on one session of ``url``, each streamed in the response to its ``POST /v1/chat``."""
    session: dict[str, str] = {}

    async def open_stream(client: httpx.AsyncClient) -> StreamResult:
        body = {"user_id": "bench", "message": clock_message(tokens, pace), **session}
        async with client.stream("POST", f"{url}/v1/chat", json=body, headers=STREAM) as response:
            session.setdefault("session_id", response.headers.get("X-Session-Id", ""))
            result = await read_events(response)
        assert result.last is not None and result.last[0] == "done", result.kinds
        assert '"status":"completed"' in result.last[1].replace(" ", ""), result.last
        assert result.kinds["token"] == tokens, result.kinds
        return result

    return open_stream


async def _delivery(openers: dict[str, Opener], *, rounds: int) -> dict[str, list[float]]:
    delays: dict[str, list[float]] = {name: [] for name in openers}
    timeout = httpx.Timeout(30, read=60)
    async with httpx.AsyncClient(timeout=timeout) as client:
        for index in range(rounds + WARMUP_ROUNDS):
            names = list(openers)
            shift = index % len(names)  # each goes first equally often
            for name in names[shift:] + names[:shift]:
                gc.disable()  # this client's own collections are not the server's delay (as timeit does)
                try:
                    result = await openers[name](client)
                finally:
                    gc.enable()
                if index >= WARMUP_ROUNDS:
                    delays[name].extend(result.delays)
    return delays


def _summary(values: list[float]) -> dict[str, float]:
    ms = 1000.0
    return {
        "p50_ms": round(percentile(values, 50) * ms, 3),
        "p99_ms": round(percentile(values, 99) * ms, 3),
        "max_ms": round(max(values) * ms, 3),
    }


def delivery(
    workdir: Path, *, databases: PostgresDatabases | None, rounds: int, postgres_note: str | None = None
) -> dict[str, Any]:
    """Token delivery latency of Parley (SQLite; with ``databases``, PostgreSQL in-process and queue too)
    against the bare sse-starlette app."""
    with ExitStack() as stack:
        baseline = stack.enter_context(baseline_sse_server())
        servers = {
            "sqlite": stack.enter_context(parley_deployment(workdir / "streams-parley", env=LIVE)),
        }
        if databases is not None:
            servers["postgres"] = stack.enter_context(
                parley_deployment(workdir, database_url=databases.create("streams_pg"), env=LIVE)
            )
            servers["postgres_queue"] = stack.enter_context(
                parley_deployment(
                    workdir,
                    database_url=databases.create("streams_queue"),
                    runner="queue",
                    workers=1,
                    env=LIVE,
                )
            )
        openers = {"baseline": baseline_opener(baseline.url, tokens=TOKENS_PER_TURN, pace=PACE_SECONDS)}
        openers.update(
            {
                name: parley_opener(server.url, tokens=TOKENS_PER_TURN, pace=PACE_SECONDS)
                for name, server in servers.items()
            }
        )
        delays = asyncio.run(_delivery(openers, rounds=rounds))
    result: dict[str, Any] = {
        "turns_each": rounds,
        "tokens_per_turn": TOKENS_PER_TURN,
        "pace_ms": PACE_SECONDS * 1000,
        "tokens_each": len(delays["baseline"]),
    }
    if postgres_note:
        result["postgres"] = postgres_note
    for name, values in delays.items():
        for key, value in _summary(values).items():
            result[f"{name}_{key}"] = value
    for name in servers:
        for q in ("p50", "p99"):
            result[f"{name}_adds_{q}_ms"] = round(result[f"{name}_{q}_ms"] - result[f"baseline_{q}_ms"], 3)
        result[f"{name}_p50_ratio"] = round(result[f"{name}_p50_ms"] / result["baseline_p50_ms"], 2)
    return result


def run(workdir: Path, *, quick: bool = False) -> dict[str, Any]:
    """Both parts; the PostgreSQL contenders only where PostgreSQL answers (the report says why not)."""
    missing = postgres_missing()
    figures: dict[str, Any] = {}
    with ExitStack() as stack:
        databases = stack.enter_context(PostgresDatabases()) if missing is None else None
        figures["delivery"] = delivery(
            workdir,
            databases=databases,
            rounds=5 if quick else ROUNDS,
            postgres_note=f"skipped: {missing}" if missing else None,
        )
    print(f"-- streams delivery: {figures['delivery']}", flush=True)
    figures["capacity"] = stream_capacity.run(workdir, quick=quick)
    return figures
