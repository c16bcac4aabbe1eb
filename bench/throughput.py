"""2,000 turns over 200 sessions at concurrency 16: Parley against a minimal endpoint running the same
graph with the same checkpointer — the most this machine can do with that graph behind HTTP.

The contenders run side by side and take the load in rotating blocks of turns, so that the machine's
drifting load (rounds of the same server have differed by 40% here) hits all alike; each one's figure
is its turns over the sum of its blocks' times. On SQLite Parley runs its turns in-process; on
PostgreSQL there are two Parleys, one with the in-process runner and one with the job queue and a
worker (``parley_queue``), each on a database of its own. ``measure`` serves other comparisons too
(bench/scaleout.py: one worker against two).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.common import PostgresDatabases, baseline_server, parley_deployment

SESSIONS = 200
TURNS_PER_SESSION = 10
CONCURRENCY = 16
BLOCKS = 8


class Contender:
    """A server taking the load: Parley (``/v1/chat``, waiting for the reply) or the minimal endpoint."""

    def __init__(self, name: str, url: str, *, parley: bool) -> None:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        self.name = name
        self.client = httpx.AsyncClient(base_url=url, timeout=60, limits=limits)
        self.parley = parley
        self.sessions: list[str] = []
        self.seconds = 0.0

    async def send(self, session: str | None, text: str) -> str:
        if self.parley:
            body: dict[str, Any] = {"user_id": "bench", "message": text, "wait": 60}
            if session is not None:
                body["session_id"] = session
            response = await self.client.post("/v1/chat", json=body)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "completed", response.text
            return str(response.json()["session_id"])
        sid = session or str(uuid.uuid4())
        response = await self.client.post("/chat", json={"session_id": sid, "message": text})
        assert response.status_code == 200, response.text
        return sid

    async def run(self, jobs: list[tuple[int | None, str]]) -> list[str]:
        """Run the jobs (session index or None for a new session, text) with CONCURRENCY workers."""
        queue: asyncio.Queue[tuple[int, tuple[int | None, str]]] = asyncio.Queue()
        for item in enumerate(jobs):
            queue.put_nowait(item)
        results = [""] * len(jobs)

        async def worker() -> None:
            while not queue.empty():
                index, (session, text) = queue.get_nowait()
                results[index] = await self.send(None if session is None else self.sessions[session], text)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return results


async def measure(contenders: list[Contender], *, sessions: int, per_session: int) -> dict[str, float]:
    """Turns per second of each contender (by name), taking the same load in rotating blocks."""
    for contender in contenders:  # untimed: create the sessions, warm the servers up
        contender.sessions = await contender.run([(None, "hello") for _ in range(sessions)])
    # Round-robin over sessions, so that concurrent requests hit different sessions.
    jobs: list[tuple[int | None, str]] = [
        (s, f"turn {t}") for t in range(per_session) for s in range(sessions)
    ]
    # Each contender goes first, second, … equally often.
    blocks = -(-BLOCKS // len(contenders)) * len(contenders)
    size = -(-len(jobs) // blocks)
    for index in range(blocks):
        block = jobs[index * size : (index + 1) * size]
        shift = index % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            started = time.perf_counter()
            await contender.run(block)
            contender.seconds += time.perf_counter() - started
    for contender in contenders:
        await contender.client.aclose()
    return {contender.name: round(len(jobs) / contender.seconds, 1) for contender in contenders}


def run(
    workdir: Path,
    *,
    sessions: int = SESSIONS,
    per_session: int = TURNS_PER_SESSION,
    databases: PostgresDatabases | None = None,
) -> dict[str, Any]:
    """On SQLite files under ``workdir``; or, given ``databases``, on PostgreSQL, with both runners."""
    with ExitStack() as stack:
        if databases is None:
            endpoint = stack.enter_context(baseline_server(workdir / "tp-baseline.sqlite"))
            parleys = {"parley": stack.enter_context(parley_deployment(workdir / "tp-parley"))}
        else:
            endpoint = stack.enter_context(baseline_server(databases.create("tp_endpoint")))
            inprocess = parley_deployment(workdir, database_url=databases.create("tp_parley"))
            queue = parley_deployment(
                workdir, database_url=databases.create("tp_queue"), runner="queue", workers=1
            )
            parleys = {"parley": stack.enter_context(inprocess), "parley_queue": stack.enter_context(queue)}
        contenders = [
            Contender("endpoint", endpoint.url, parley=False),
            *(Contender(name, server.url, parley=True) for name, server in parleys.items()),
        ]
        rates = asyncio.run(measure(contenders, sessions=sessions, per_session=per_session))
    result: dict[str, Any] = {
        "backend": "sqlite" if databases is None else "postgres",
        "turns": sessions * per_session,
        "sessions": sessions,
        "concurrency": CONCURRENCY,
        **{f"{name}_turns_per_s": rate for name, rate in rates.items()},
    }
    for name in parleys:
        key = "ratio" if name == "parley" else f"{name}_ratio"
        result[key] = rates[name] / rates["endpoint"]
    return result
