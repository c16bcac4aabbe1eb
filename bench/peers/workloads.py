"""The workloads of ``python -m bench peers``, each run against every contender in the same run. Where
the contenders take the same load, they take it in rotating blocks (A, B, C, then B, C, A, …) so that the
machine's drifting load hits all alike.

Every function takes the contenders as ``{name: Client}`` and returns ``{name: {figure: value}}``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import percentile
from bench.peers.clients import DONE, TERMINAL, Client
from bench.peers.graph import effect_line
from bench.peers.servers import Served

MS = 1000.0


class Errors:
    """Requests that failed, by contender: counted and the first one kept, so that one peer's error
    answer (Aegra answered a 500 to ``runs.create`` in one run) is a figure, not the end of the run."""

    def __init__(self, names: list[str]) -> None:
        self.count = dict.fromkeys(names, 0)
        self.first: dict[str, str] = {}

    async def timed(self, name: str, call: Awaitable[object]) -> float | None:
        """``call``'s seconds, or None if it failed."""
        started = time.perf_counter()
        try:
            await call
        except Exception as exc:  # any failure of the contender counts; the workload goes on
            self.count[name] += 1
            self.first.setdefault(name, f"{type(exc).__name__}: {str(exc)[:160]}")
            return None
        return time.perf_counter() - started

    def figures(self, name: str) -> dict[str, Any]:
        return {"errors": self.count[name], "first_error": self.first.get(name)}


def _rotations(names: list[str], blocks: int) -> list[list[str]]:
    """The contenders' order in each block: each goes first, second, … equally often."""
    return [names[i % len(names) :] + names[: i % len(names)] for i in range(blocks)]


def _latency_figures(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "samples": 0}
    return {
        "p50_ms": round(percentile(values, 50) * MS, 2),
        "p99_ms": round(percentile(values, 99) * MS, 2),
        "samples": len(values),
    }


async def _sessions(clients: dict[str, Client], count: int, *, concurrency: int = 16) -> dict[str, list[str]]:
    """``count`` sessions on each contender, made by an untimed first turn (which also warms it up),
    ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(client: Client) -> str:
        async with gate:
            return await client.new_session()

    made: dict[str, list[str]] = {}
    for name, client in clients.items():
        made[name] = list(await asyncio.gather(*(one(client) for _ in range(count))))
    return made


async def sequential(
    clients: dict[str, Client], *, turns: int, sessions: int = 10, block: int = 10
) -> dict[str, Any]:
    """Inline turns one at a time, over ``sessions`` sessions, in blocks of ``block`` turns."""
    owned = await _sessions(clients, sessions)
    timings: dict[str, list[float]] = {name: [] for name in clients}
    errors = Errors(list(clients))
    blocks = -(-turns // block)
    for index, order in enumerate(_rotations(list(clients), blocks)):
        for name in order:
            for i in range(index * block, min(turns, (index + 1) * block)):
                took = await errors.timed(name, clients[name].turn(owned[name][i % sessions], f"message {i}"))
                if took is not None:
                    timings[name].append(took)
    return {name: {**_latency_figures(values), **errors.figures(name)} for name, values in timings.items()}


async def _pool(
    jobs: list[tuple[str, str]],
    send: Callable[[str, str], Awaitable[None]],
    concurrency: int,
    *,
    errors: Errors,
    name: str,
) -> list[float]:
    """Run the jobs (session, text) with ``concurrency`` workers; each job's latency."""
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    took: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            session, text = queue.get_nowait()
            seconds = await errors.timed(name, send(session, text))
            if seconds is not None:
                took.append(seconds)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return took


async def throughput(
    clients: dict[str, Client], *, sessions: int, per_session: int, concurrency: int = 16, blocks: int = 6
) -> dict[str, Any]:
    """``sessions`` times ``per_session`` inline turns at ``concurrency``, round-robin over the sessions (so
    that concurrent turns hit different sessions), in ``blocks`` rotating blocks per contender."""
    owned = await _sessions(clients, sessions, concurrency=concurrency)
    jobs = [(s, f"turn {t}") for t in range(per_session) for s in range(sessions)]
    blocks = max(blocks - blocks % len(clients), len(clients))
    size = -(-len(jobs) // blocks)
    seconds = dict.fromkeys(clients, 0.0)
    latencies: dict[str, list[float]] = {name: [] for name in clients}
    errors = Errors(list(clients))
    for index, order in enumerate(_rotations(list(clients), blocks)):
        chunk = jobs[index * size : (index + 1) * size]
        for name in order:
            named = [(owned[name][s], text) for s, text in chunk]
            started = time.perf_counter()
            latencies[name] += await _pool(named, clients[name].turn, concurrency, errors=errors, name=name)
            seconds[name] += time.perf_counter() - started
    return {
        name: {
            # Turns that completed, over the time the contender's blocks took.
            "turns_per_s": round(len(latencies[name]) / seconds[name], 2),
            **{key: _latency_figures(latencies[name])[key] for key in ("p50_ms", "p99_ms")},
            **errors.figures(name),
            "turns": len(jobs),
            "sessions": sessions,
            "concurrency": concurrency,
        }
        for name in clients
    }


async def background(clients: dict[str, Client], *, turns: int, sessions: int = 5) -> dict[str, Any]:
    """Submit a turn to run in the background, then join it: submit → done, one at a time, the
    contenders alternating turn by turn."""
    owned = await _sessions(clients, sessions)
    timings: dict[str, list[float]] = {name: [] for name in clients}
    errors = Errors(list(clients))

    async def submit_and_join(client: Client, session: str, text: str) -> None:
        await client.join(session, await client.submit(session, text))

    for i, order in enumerate(_rotations(list(clients), turns)):
        for name in order:
            session = owned[name][i % sessions]
            took = await errors.timed(name, submit_and_join(clients[name], session, f"background {i}"))
            if took is not None:
                timings[name].append(took)
    return {name: {**_latency_figures(values), **errors.figures(name)} for name, values in timings.items()}


async def race(clients: dict[str, Client], *, messages: int = 20, within: float = 120) -> dict[str, Any]:
    """``messages`` messages sent at once to one session, each from a client of its own (connections of
    their own), in the background; then, once every accepted one has ended, what the session's state
    holds: how many of them, how many twice, whether each turn saw the one before it complete (every
    user message followed by its own reply), and whether they are in the order the server accepted them."""
    results: dict[str, Any] = {}
    for name, client in clients.items():
        try:
            results[name] = await _race_one(client, messages=messages, within=within)
        except Exception as exc:  # a contender that fails here is a result, not the end of the run
            results[name] = {"error": f"{type(exc).__name__}: {str(exc)[:160]}"}
    return results


async def _race_one(client: Client, *, messages: int, within: float) -> dict[str, Any]:
    session = await client.new_session()
    texts = [f"race {i} {uuid.uuid4().hex[:6]}" for i in range(messages)]
    senders = [client.fresh() for _ in texts]
    try:
        sent = await asyncio.gather(
            *(sender.submit(session, text) for sender, text in zip(senders, texts, strict=True)),
            return_exceptions=True,
        )
    finally:
        for sender in senders:
            await sender.aclose()
    accepted = [handle for handle in sent if isinstance(handle, str)]
    refused = [f"{type(e).__name__}: {str(e)[:120]}" for e in sent if isinstance(e, BaseException)]
    deadline = time.monotonic() + within
    ended: dict[str, str] = {}
    while len(ended) < len(accepted) and time.monotonic() < deadline:
        for handle in accepted:
            if handle not in ended:
                status = await client.status(session, handle)
                if status in TERMINAL:
                    ended[handle] = status
        await asyncio.sleep(0.2)
    state = await client.state_texts(session)
    humans = [text for kind, text in state if kind == "human" and text in texts]
    serialised = all(
        index + 1 < len(state) and state[index + 1][1].endswith(text)
        for index, (kind, text) in enumerate(state)
        if kind == "human" and text in texts
    )
    order = [text for text in await client.accepted_order(session) if text in texts]
    return {
        "sent": messages,
        "accepted": len(accepted),
        "refused": len(refused),
        "refusal": refused[0] if refused else None,
        "completed": sum(1 for status in ended.values() if status in DONE),
        "in_state": len(set(humans)),
        "twice_in_state": len(humans) - len(set(humans)),
        "serialised": serialised,
        "in_accepted_order": bool(order) and humans == order,
    }


def _effect_runs(effects: Path, session: str, text: str) -> int:
    if not effects.exists():
        return 0
    line = effect_line(session, text)
    return sum(1 for found in effects.read_text(encoding="utf-8").splitlines(keepends=True) if found == line)


async def crash(
    name: str,
    client: Client,
    server: Served,
    *,
    effects: Path,
    sleep: float = 15.0,
    settle: float = 11.0,
    within: float = 90,
) -> dict[str, Any]:
    """A background turn whose side-effect step ran and whose model still sleeps; SIGKILL of the server;
    a restart on the same storage. Did the turn complete, how many times did its side effect run, and
    how long from the kill until it completed (or the server was ready, if it never did)."""
    session = await client.new_session()
    text = f"[[sleep:{sleep}]] crash {uuid.uuid4().hex[:8]}"
    handle = await client.submit(session, text)
    deadline = time.monotonic() + within
    while _effect_runs(effects, session, text) == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the side effect never ran")
        await asyncio.sleep(0.02)
    # The model now sleeps. ``settle`` outlasts the in-memory server's 10 s flush to disk, so that what
    # survives the kill is what the server stores, not where its flush timer stood.
    await asyncio.sleep(settle)
    killed = time.monotonic()
    server.kill()
    ready = server.start()
    status = "unknown"
    while time.monotonic() - killed < within:
        status = await client.status(session, handle)
        if status in TERMINAL:
            break
        await asyncio.sleep(0.1)
    recovered = time.monotonic() - killed
    return {
        "completed": status in DONE,
        "final_status": status,
        "effect_runs": _effect_runs(effects, session, text),
        "restart_ready_s": round(ready, 2),
        "kill_to_done_s": round(recovered, 2) if status in DONE else None,
        # The turn's model step is run again from its start at best: what recovery cost on top of it.
        "recovery_overhead_s": round(recovered - sleep, 2) if status in DONE else None,
        "model_sleep_s": sleep,
    }
