"""Sequential inline turns: Parley over HTTP against the same graph and checkpointer in-process.

The contenders — the graph invoked in-process (no HTTP), a minimal FastAPI endpoint invoking it, and
Parley — take turns request by request, so that the machine's drifting load hits all of them alike. On
SQLite Parley runs its turns in-process; on PostgreSQL there are two Parleys, one with the in-process
runner and one with the job queue and a worker (``parley_queue``), each on a database of its own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import HumanMessage

from bench.baseline_app import storage
from bench.common import POOL_SIZE, PostgresDatabases, baseline_server, parley_deployment, percentile
from parley.bots.assistant import build_graph
from parley.core.context import GraphContext
from parley.models.scripted import ScriptedChatModel
from parley.storage.sql_store import SqlStore

SESSIONS = 10
WARMUP = 30


def _text(i: int, reply_words: int | None) -> str:
    if reply_words is None:
        return f"message {i}"  # the scripted model echoes it: a reply of three tokens
    return "[[reply:" + " ".join(f"word{i}-{w}" for w in range(reply_words)) + "]]"


async def _measure(
    *,
    graph_storage: Path | str,
    endpoint_url: str,
    parleys: dict[str, str],
    turns: int,
    reply_words: int | None = None,
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"in_process": [], "endpoint": [], **{name: [] for name in parleys}}
    # The same graph as Parley's: the store serves the assistant's tools, bound to the model.
    settings, db, checkpointer = storage(graph_storage, pool_size=POOL_SIZE)
    store = SqlStore(db)
    await store.open()
    try:
        async with checkpointer as saver, httpx.AsyncClient(timeout=30) as client:
            context = GraphContext(model=ScriptedChatModel(), settings=settings, store=store)
            graph = build_graph(context).compile(checkpointer=saver)
            threads = [str(uuid.uuid4()) for _ in range(SESSIONS)]
            parley_sessions: dict[str, list[str]] = {name: [] for name in parleys}
            for i in range(turns + WARMUP):
                text = _text(i, reply_words)
                session = i % SESSIONS
                took: dict[str, float] = {}

                started = time.perf_counter()
                config: Any = {"configurable": {"thread_id": threads[session]}}
                await graph.ainvoke(
                    {"messages": [HumanMessage(text, id=str(uuid.uuid4()))]},
                    config,
                    durability=settings.durability,
                )
                took["in_process"] = time.perf_counter() - started

                started = time.perf_counter()
                response = await client.post(
                    f"{endpoint_url}/chat", json={"session_id": threads[session], "message": text}
                )
                took["endpoint"] = time.perf_counter() - started
                assert response.status_code == 200, response.text

                for name, url in parleys.items():
                    sessions = parley_sessions[name]
                    body: dict[str, Any] = {"user_id": "bench", "message": text, "wait": 30}
                    if len(sessions) == SESSIONS:
                        body["session_id"] = sessions[session]
                    started = time.perf_counter()
                    response = await client.post(f"{url}/v1/chat", json=body)
                    took[name] = time.perf_counter() - started
                    assert response.status_code == 200, response.text
                    assert response.json()["status"] == "completed", response.text
                    if len(sessions) < SESSIONS:
                        sessions.append(response.json()["session_id"])

                if i >= WARMUP:
                    for name, seconds in took.items():
                        timings[name].append(seconds)
    finally:
        await store.close()
    return timings


def _report(timings: dict[str, list[float]], *, turns: int) -> dict[str, Any]:
    ms = 1000.0
    result: dict[str, Any] = {"turns": turns}
    for name, values in timings.items():
        result[f"{name}_p50_ms"] = percentile(values, 50) * ms
        result[f"{name}_p99_ms"] = percentile(values, 99) * ms
    result["http_adds_p50_ms"] = result["endpoint_p50_ms"] - result["in_process_p50_ms"]
    for name in timings.keys() - {"in_process", "endpoint"}:
        result[f"{name}_adds_p50_ms"] = result[f"{name}_p50_ms"] - result["in_process_p50_ms"]
        result[f"{name}_over_endpoint_p50_ms"] = result[f"{name}_p50_ms"] - result["endpoint_p50_ms"]
    result["p50_ratio_vs_in_process"] = result["parley_p50_ms"] / result["in_process_p50_ms"]
    return result


def run(
    workdir: Path, *, turns: int, databases: PostgresDatabases | None = None, reply_words: int | None = None
) -> dict[str, Any]:
    """On SQLite files under ``workdir``; or, given ``databases``, on PostgreSQL, with both runners. With
    ``reply_words``, every turn's reply is that many tokens (the scripted model's ``[[reply:…]]``)."""
    with ExitStack() as stack:
        graph_storage: Path | str
        if databases is None:
            graph_storage = workdir / "latency-inproc.sqlite"
            endpoint = stack.enter_context(baseline_server(workdir / "latency-baseline.sqlite"))
            parleys = {"parley": stack.enter_context(parley_deployment(workdir / "latency-parley")).url}
        else:
            graph_storage = databases.create("latency_graph")
            endpoint = stack.enter_context(baseline_server(databases.create("latency_endpoint")))
            inprocess = parley_deployment(workdir, database_url=databases.create("latency_parley"))
            queue = parley_deployment(
                workdir, database_url=databases.create("latency_queue"), runner="queue", workers=1
            )
            parleys = {
                "parley": stack.enter_context(inprocess).url,
                "parley_queue": stack.enter_context(queue).url,
            }
        timings = asyncio.run(
            _measure(
                graph_storage=graph_storage,
                endpoint_url=endpoint.url,
                parleys=parleys,
                turns=turns,
                reply_words=reply_words,
            )
        )
    return {
        "backend": "sqlite" if databases is None else "postgres",
        "reply_tokens": reply_words or 3,
        **_report(timings, turns=turns),
    }
