"""Scale-out on PostgreSQL: what the job queue costs, and what the checkpointer's pool buys.

1. **Pickup**: messages sent with ``Prefer: respond-async`` (the request does not wait), spaced so that none
   queues behind another, to an API instance with the queue runner and one worker, and — alternating
   message by message — to one with the in-process runner. Pickup is ``started_at - created_at`` of the
   message row: the API's clock when it accepted the message, the runner's when the turn started
   (``mark_running``) — one machine, one clock. Also submit → completed (``finished_at``).
2. **Inline turns on PostgreSQL**: bench/latency.py and bench/throughput.py with their PostgreSQL
   contenders (the minimal endpoint on the same saver; Parley in-process; Parley with the queue); the
   latency once more with replies of 200 tokens.
3. **One worker against two**: one API instance (queue runner) with one worker, and the same with a
   second worker started beside it, taking bench/throughput.py's load in one-two-two-one blocks.
4. **The saver's lock**: LangGraph's ``AsyncPostgresSaver`` guards every call with one ``asyncio.Lock``;
   Parley replaces it with a no-op because each call takes its own pooled connection
   (storage/checkpointer.py). Here both savers share one pool, and 16 sessions run concurrently in this
   process against each in alternating blocks — with the assistant, and with a one-node graph where the
   checkpoints are nearly all the work.

Every database is made for the run (``parley_bench_<pid>_*``) and dropped at its end.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

import httpx
import psycopg
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from psycopg.rows import dict_row

from bench import latency, throughput
from bench.baseline_app import storage
from bench.common import (
    ADMIN_DATABASE_URL,
    PostgresDatabases,
    Worker,
    loopback,
    parley_deployment,
    percentile,
    poll,
)
from parley.bots.assistant import build_graph
from parley.core.context import GraphContext
from parley.models.scripted import ScriptedChatModel
from parley.storage.sql_store import SqlStore

PICKUP_SESSIONS = 10
# One message every 75 ms, alternating between the two deployments: a turn here takes 15-40 ms, so each
# message finds its runner idle (the report counts those that did not).
PICKUP_INTERVAL_SECONDS = 0.075
# A reply of this many tokens, as a model writes them: the assistant holds them back and publishes them
# in a burst just before the turn's end (a queue turn's done crosses processes behind them).
LONG_REPLY_WORDS = 200
LOCK_SESSIONS = 16
LOCK_BLOCKS = 8


async def _send_spaced(urls: dict[str, str], *, messages: int) -> dict[str, list[str]]:
    """Send ``messages`` background messages to each deployment, alternating, one every interval; the
    message ids by deployment."""
    ids: dict[str, list[str]] = {name: [] for name in urls}
    async with httpx.AsyncClient(timeout=30) as client:
        sessions: dict[str, list[str]] = {name: [] for name in urls}
        for name, url in urls.items():  # untimed: create the sessions, warm up (the worker included)
            for _ in range(PICKUP_SESSIONS):
                body = {"user_id": "bench", "message": "hello", "wait": 30}
                response = await client.post(f"{url}/v1/chat", json=body)
                assert response.json()["status"] == "completed", response.text
                sessions[name].append(response.json()["session_id"])
        started = time.perf_counter()
        slot = 0
        for i in range(messages):
            for name, url in urls.items():
                await asyncio.sleep(max(0.0, started + slot * PICKUP_INTERVAL_SECONDS - time.perf_counter()))
                slot += 1
                body = {
                    "user_id": "bench",
                    "message": f"message {i}",
                    "session_id": sessions[name][i % PICKUP_SESSIONS],
                }
                response = await client.post(f"{url}/v1/chat", json=body, headers={"Prefer": "respond-async"})
                assert response.status_code == 202, response.text
                ids[name].append(response.json()["message_id"])
    return ids


def _rows(url: str, ids: list[str]) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return list(
            conn.execute(
                "SELECT status, created_at, started_at, finished_at FROM parley_messages "
                "WHERE message_id = ANY(%s)",
                (ids,),
            )
        )


def _ms(later: str, earlier: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds() * 1000


def pickup(workdir: Path, databases: PostgresDatabases, *, messages: int) -> dict[str, Any]:
    urls = {"inprocess": databases.create("pickup_inprocess"), "queue": databases.create("pickup_queue")}
    with (
        parley_deployment(workdir, database_url=urls["inprocess"]) as inprocess,
        parley_deployment(workdir, database_url=urls["queue"], runner="queue", workers=1) as queue,
    ):
        ids = asyncio.run(_send_spaced({"inprocess": inprocess.url, "queue": queue.url}, messages=messages))

        def ended() -> dict[str, list[dict[str, Any]]] | None:
            rows = {name: _rows(urls[name], ids[name]) for name in urls}
            done = all(
                r["status"] in ("completed", "failed", "cancelled") for found in rows.values() for r in found
            )
            return rows if done else None

        rows: dict[str, list[dict[str, Any]]] = poll(ended, within=120, every=0.2)
    result: dict[str, Any] = {"messages": messages, "interval_ms": PICKUP_INTERVAL_SECONDS * 1000}
    # Turns of either deployment, to count the messages that arrived while another turn was running.
    turns = [(r["started_at"], r["finished_at"]) for found in rows.values() for r in found]
    for name, found in rows.items():
        assert all(r["status"] == "completed" for r in found), found
        picked = [_ms(r["started_at"], r["created_at"]) for r in found]
        completed = [_ms(r["finished_at"], r["created_at"]) for r in found]
        result[f"{name}_pickup_p50_ms"] = round(percentile(picked, 50), 2)
        result[f"{name}_pickup_p99_ms"] = round(percentile(picked, 99), 2)
        result[f"{name}_completed_p50_ms"] = round(percentile(completed, 50), 2)
        result[f"{name}_completed_p99_ms"] = round(percentile(completed, 99), 2)
        result[f"{name}_arrived_during_another_turn"] = sum(
            any(start < r["created_at"] < end for start, end in turns) for r in found
        )
    result["queue_adds_pickup_p50_ms"] = round(
        result["queue_pickup_p50_ms"] - result["inprocess_pickup_p50_ms"], 2
    )
    return result


async def _one_against_two(
    contender: throughput.Contender,
    url: str,
    databases: PostgresDatabases,
    *,
    sessions: int,
    per_session: int,
) -> tuple[dict[str, float], int]:
    contender.sessions = await contender.run([(None, "hello") for _ in range(sessions)])  # untimed
    jobs: list[tuple[int | None, str]] = [
        (s, f"turn {t}") for t in range(per_session) for s in range(sessions)
    ]
    pattern = ["one", "two", "two", "one"] * 2
    size = -(-len(jobs) // len(pattern))
    seconds = {"one": 0.0, "two": 0.0}
    connections = 0
    second: Worker | None = None
    warm_up: list[tuple[int | None, str]] = [
        (s % sessions, "warm-up") for s in range(2 * throughput.CONCURRENCY)
    ]
    try:
        for index, config in enumerate(pattern):
            if config == "two" and second is None:
                second = Worker(url)
                await asyncio.to_thread(second.__enter__)
                await contender.run(warm_up)
            elif config == "one" and second is not None:
                await asyncio.to_thread(second.__exit__)
                second = None
            started = time.perf_counter()
            await contender.run(jobs[index * size : (index + 1) * size])
            seconds[config] += time.perf_counter() - started
            if config == "two":
                connections = max(connections, databases.connections())
    finally:
        if second is not None:
            await asyncio.to_thread(second.__exit__)
        await contender.client.aclose()
    return {name: len(jobs) / 2 / s for name, s in seconds.items()}, connections


def workers(
    workdir: Path, databases: PostgresDatabases, *, sessions: int, per_session: int
) -> dict[str, Any]:
    """Throughput of one API instance with one worker, and with a second worker started beside it.

    One deployment, so both figures share the API instance, the database and the sessions; the second
    worker runs for the blocks in the middle of each one-two-two-one group (started twice in all, each
    time warmed up untimed), so that drift hits both alike.
    """
    url = databases.create("workers")
    with parley_deployment(workdir, database_url=url, runner="queue", workers=1) as api:
        contender = throughput.Contender("queue", api.url, parley=True)
        rates, connections = asyncio.run(
            _one_against_two(contender, url, databases, sessions=sessions, per_session=per_session)
        )
    return {
        "turns": sessions * per_session,
        "concurrency": throughput.CONCURRENCY,
        "one_worker_turns_per_s": round(rates["one"], 1),
        "two_workers_turns_per_s": round(rates["two"], 1),
        "ratio": rates["two"] / rates["one"],
        "connections_with_two_workers": connections,
    }


class _Counter(TypedDict):
    n: int


def _one_node_graph() -> StateGraph[_Counter, Any, Any, Any]:
    """A graph whose turn is one trivial step: its time is nearly all checkpointing."""

    def step(state: _Counter) -> _Counter:
        return {"n": state["n"] + 1}

    graph: StateGraph[_Counter, Any, Any, Any] = StateGraph(_Counter)
    graph.add_node("step", step)
    graph.add_edge(START, "step")
    graph.add_edge("step", END)
    return graph


async def _rates(
    graphs: dict[str, Any], *, fresh: bool, durability: Any, turns_per_block: int
) -> dict[str, float]:
    """Turns per second of each graph (by name), LOCK_SESSIONS sessions at once, in alternating blocks."""

    def payload(text: str) -> dict[str, Any]:
        return {"n": 0} if fresh else {"messages": [HumanMessage(text, id=str(uuid.uuid4()))]}

    async def session(graph: Any, thread: str, turns: int) -> None:
        config: Any = {"configurable": {"thread_id": thread}}
        for t in range(turns):
            await graph.ainvoke(payload(f"turn {t}"), config, durability=durability)

    threads = {name: [str(uuid.uuid4()) for _ in range(LOCK_SESSIONS)] for name in graphs}
    seconds = dict.fromkeys(graphs, 0.0)
    for name, graph in graphs.items():  # untimed warm-up: the threads' first checkpoints
        await asyncio.gather(*(session(graph, t, 1) for t in threads[name]))
    for block in range(LOCK_BLOCKS):
        order = list(graphs) if block % 2 == 0 else list(graphs)[::-1]
        for name in order:
            started = time.perf_counter()
            await asyncio.gather(*(session(graphs[name], t, turns_per_block) for t in threads[name]))
            seconds[name] += time.perf_counter() - started
    return {name: LOCK_SESSIONS * LOCK_BLOCKS * turns_per_block / s for name, s in seconds.items()}


async def _saver_lock(url: str, *, turns_per_block: int) -> dict[str, Any]:
    settings, db, checkpointer = storage(url, pool_size=10)  # Parley's default pool size
    store = SqlStore(db)
    await store.open()
    result: dict[str, Any] = {
        "sessions": LOCK_SESSIONS,
        "turns": LOCK_SESSIONS * LOCK_BLOCKS * turns_per_block,
    }
    try:
        async with checkpointer as unlocked:
            # The same pool; only the lock differs. The saver's own constructor gives it its lock.
            savers = {"no_lock": unlocked, "lock": AsyncPostgresSaver(unlocked.conn)}
            context = GraphContext(model=ScriptedChatModel(), settings=settings, store=store)
            for kind in ("assistant", "one_node"):
                graphs = {
                    name: (build_graph(context) if kind == "assistant" else _one_node_graph()).compile(
                        checkpointer=saver
                    )
                    for name, saver in savers.items()
                }
                rates = await _rates(
                    graphs,
                    fresh=kind == "one_node",
                    durability=settings.durability,
                    turns_per_block=turns_per_block,
                )
                result[f"{kind}_lock_turns_per_s"] = round(rates["lock"], 1)
                result[f"{kind}_no_lock_turns_per_s"] = round(rates["no_lock"], 1)
                result[f"{kind}_ratio"] = rates["no_lock"] / rates["lock"]
    finally:
        await store.close()
    return result


def saver_lock(databases: PostgresDatabases, *, turns_per_block: int) -> dict[str, Any]:
    return asyncio.run(_saver_lock(databases.create("saver_lock"), turns_per_block=turns_per_block))


def postgres_missing() -> str | None:
    """Why the PostgreSQL these benchmarks use cannot be reached, or None if it can."""
    try:
        with psycopg.connect(loopback(ADMIN_DATABASE_URL), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL at {ADMIN_DATABASE_URL} ({str(exc).strip().splitlines()[0]})"


def run(workdir: Path, *, quick: bool = False) -> dict[str, Any]:
    with PostgresDatabases() as databases:
        figures: dict[str, Any] = {}
        stages = {
            "pickup": lambda: pickup(workdir, databases, messages=40 if quick else 200),
            "latency": lambda: latency.run(workdir, turns=60 if quick else 300, databases=databases),
            "latency_long_reply": lambda: latency.run(
                workdir, turns=30 if quick else 100, databases=databases, reply_words=LONG_REPLY_WORDS
            ),
            "throughput": lambda: (
                throughput.run(workdir, sessions=40, per_session=5, databases=databases)
                if quick
                else throughput.run(workdir, sessions=100, per_session=10, databases=databases)
            ),
            "workers": lambda: (
                workers(workdir, databases, sessions=40, per_session=5)
                if quick
                else workers(workdir, databases, sessions=100, per_session=10)
            ),
            "saver_lock": lambda: saver_lock(databases, turns_per_block=2 if quick else 5),
        }
        for name, stage in stages.items():
            started = time.monotonic()
            figures[name] = stage()
            figures[name]["seconds"] = round(time.monotonic() - started, 1)
            print(f"-- scaleout {name}: {figures[name]}", flush=True)
    return figures
