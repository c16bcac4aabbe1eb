"""Sequential inline turns: Parley over HTTP against the same graph and checkpointer in-process."""

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
from parley.bots.context import GraphContext
from parley.models.scripted import ScriptedChatModel
from parley.settings import Settings
from parley.storage.checkpointer import sqlite_checkpointer

SESSIONS = 10


async def _in_process(path: Path, turns: int) -> list[float]:
    settings = Settings(data_dir=path.parent)
    async with sqlite_checkpointer(path) as saver:
        graph = build_graph(GraphContext(model=ScriptedChatModel(), settings=settings)).compile(
            checkpointer=saver
        )
        threads = [str(uuid.uuid4()) for _ in range(SESSIONS)]
        timings = []
        for i in range(turns):
            config: Any = {"configurable": {"thread_id": threads[i % SESSIONS]}}
            started = time.perf_counter()
            await graph.ainvoke(
                {"messages": [HumanMessage(f"message {i}", id=str(uuid.uuid4()))]},
                config,
                durability=settings.durability,
            )
            timings.append(time.perf_counter() - started)
        return timings


def _over_http(url: str, turns: int, *, parley: bool) -> list[float]:
    timings = []
    with httpx.Client(base_url=url, timeout=30) as client:
        sessions: list[str] = []
        for i in range(turns):
            started = time.perf_counter()
            if parley:
                body: dict[str, Any] = {"user_id": "bench", "message": f"message {i}", "wait": 30}
                if len(sessions) == SESSIONS:
                    body["session_id"] = sessions[i % SESSIONS]
                response = client.post("/v1/chat", json=body)
                if len(sessions) < SESSIONS:
                    sessions.append(response.json()["session_id"])
            else:
                if len(sessions) < SESSIONS:
                    sessions.append(str(uuid.uuid4()))
                response = client.post(
                    "/chat", json={"session_id": sessions[i % SESSIONS], "message": f"message {i}"}
                )
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
        if parley:
            assert response.json()["status"] == "completed"
    return timings


def run(workdir: Path, *, turns: int) -> dict[str, Any]:
    warmup = 30
    in_process = asyncio.run(_in_process(workdir / "inproc.sqlite", turns + warmup))[warmup:]
    with baseline_server(workdir / "latency-baseline.sqlite") as server:
        endpoint = _over_http(server.url, turns + warmup, parley=False)[warmup:]
    with parley_server(workdir / "latency-parley") as server:
        parley = _over_http(server.url, turns + warmup, parley=True)[warmup:]
    ms = 1000.0
    result = {
        "turns": turns,
        "in_process_p50_ms": percentile(in_process, 50) * ms,
        "in_process_p99_ms": percentile(in_process, 99) * ms,
        "endpoint_p50_ms": percentile(endpoint, 50) * ms,
        "endpoint_p99_ms": percentile(endpoint, 99) * ms,
        "parley_p50_ms": percentile(parley, 50) * ms,
        "parley_p99_ms": percentile(parley, 99) * ms,
    }
    result["parley_adds_p50_ms"] = result["parley_p50_ms"] - result["in_process_p50_ms"]
    result["http_adds_p50_ms"] = result["endpoint_p50_ms"] - result["in_process_p50_ms"]
    result["parley_over_endpoint_p50_ms"] = result["parley_p50_ms"] - result["endpoint_p50_ms"]
    result["p50_ratio_vs_in_process"] = result["parley_p50_ms"] / result["in_process_p50_ms"]
    return result
