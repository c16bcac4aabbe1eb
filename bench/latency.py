"""Sequential inline turns: Parley over HTTP against the same graph and checkpointer in-process.

The three contenders — the graph invoked in-process (no HTTP), a minimal FastAPI endpoint invoking it,
and Parley — take turns request by request, so that the machine's drifting load hits all three alike.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import HumanMessage

from bench.common import baseline_server, parley_server, percentile
from parley.bots.assistant import build_graph
from parley.core.context import GraphContext
from parley.models.scripted import ScriptedChatModel
from parley.settings import Settings
from parley.storage.checkpointer import sqlite_checkpointer
from parley.storage.sql_store import SqlStore
from parley.storage.sqlite_db import SqliteDatabase

SESSIONS = 10
WARMUP = 30


async def _measure(workdir: Path, endpoint_url: str, parley_url: str, turns: int) -> dict[str, list[float]]:
    settings = Settings(data_dir=workdir)
    timings: dict[str, list[float]] = {"in_process": [], "endpoint": [], "parley": []}
    # The same graph as Parley's: the store serves the assistant's tools, bound to the model.
    store = SqlStore(SqliteDatabase(workdir / "latency-inproc-actions.sqlite"))
    await store.open()
    async with (
        sqlite_checkpointer(workdir / "latency-inproc.sqlite") as saver,
        httpx.AsyncClient(timeout=30) as client,
    ):
        context = GraphContext(model=ScriptedChatModel(), settings=settings, store=store)
        graph = build_graph(context).compile(checkpointer=saver)
        threads = [str(uuid.uuid4()) for _ in range(SESSIONS)]
        parley_sessions: list[str] = []
        for i in range(turns + WARMUP):
            text = f"message {i}"
            session = i % SESSIONS

            started = time.perf_counter()
            config: Any = {"configurable": {"thread_id": threads[session]}}
            await graph.ainvoke(
                {"messages": [HumanMessage(text, id=str(uuid.uuid4()))]},
                config,
                durability=settings.durability,
            )
            in_process = time.perf_counter() - started

            started = time.perf_counter()
            response = await client.post(
                f"{endpoint_url}/chat", json={"session_id": threads[session], "message": text}
            )
            endpoint = time.perf_counter() - started
            assert response.status_code == 200, response.text

            body: dict[str, Any] = {"user_id": "bench", "message": text, "wait": 30}
            if len(parley_sessions) == SESSIONS:
                body["session_id"] = parley_sessions[session]
            started = time.perf_counter()
            response = await client.post(f"{parley_url}/v1/chat", json=body)
            parley = time.perf_counter() - started
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "completed", response.text
            if len(parley_sessions) < SESSIONS:
                parley_sessions.append(response.json()["session_id"])

            if i >= WARMUP:
                timings["in_process"].append(in_process)
                timings["endpoint"].append(endpoint)
                timings["parley"].append(parley)
    await store.close()
    return timings


def run(workdir: Path, *, turns: int) -> dict[str, Any]:
    with (
        baseline_server(workdir / "latency-baseline.sqlite") as endpoint,
        parley_server(workdir / "latency-parley") as parley,
    ):
        timings = asyncio.run(_measure(workdir, endpoint.url, parley.url, turns))
    ms = 1000.0
    result: dict[str, Any] = {"turns": turns}
    for name, values in timings.items():
        result[f"{name}_p50_ms"] = percentile(values, 50) * ms
        result[f"{name}_p99_ms"] = percentile(values, 99) * ms
    result["parley_adds_p50_ms"] = result["parley_p50_ms"] - result["in_process_p50_ms"]
    result["http_adds_p50_ms"] = result["endpoint_p50_ms"] - result["in_process_p50_ms"]
    result["parley_over_endpoint_p50_ms"] = result["parley_p50_ms"] - result["endpoint_p50_ms"]
    result["p50_ratio_vs_in_process"] = result["parley_p50_ms"] / result["in_process_p50_ms"]
    return result
