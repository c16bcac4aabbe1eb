"""2,000 turns over 200 sessions at concurrency 16: Parley against a minimal endpoint running the same
graph with the same checkpointer — the most this machine can do with that graph behind HTTP.

Both servers run side by side and take the load in alternating blocks of turns, so that the machine's
drifting load (rounds of the same server have differed by 40% here) hits both alike; each one's figure
is its 2,000 turns over the sum of its blocks' times.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import baseline_server, parley_server

SESSIONS = 200
TURNS_PER_SESSION = 10
CONCURRENCY = 16
BLOCKS = 8


class _Contender:
    def __init__(self, url: str, *, parley: bool) -> None:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
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


async def _measure(endpoint_url: str, parley_url: str, *, sessions: int, per_session: int) -> dict[str, Any]:
    contenders = [_Contender(endpoint_url, parley=False), _Contender(parley_url, parley=True)]
    for contender in contenders:  # untimed: create the sessions, warm both servers up
        contender.sessions = await contender.run([(None, "hello") for _ in range(sessions)])
    # Round-robin over sessions, so that concurrent requests hit different sessions.
    jobs: list[tuple[int | None, str]] = [
        (s, f"turn {t}") for t in range(per_session) for s in range(sessions)
    ]
    size = -(-len(jobs) // BLOCKS)
    for index in range(BLOCKS):
        block = jobs[index * size : (index + 1) * size]
        order = contenders if index % 2 == 0 else contenders[::-1]
        for contender in order:
            started = time.perf_counter()
            await contender.run(block)
            contender.seconds += time.perf_counter() - started
    for contender in contenders:
        await contender.client.aclose()
    endpoint, parley = (len(jobs) / c.seconds for c in contenders)
    return {"endpoint_turns_per_s": round(endpoint, 1), "parley_turns_per_s": round(parley, 1)}


def run(workdir: Path, *, sessions: int = SESSIONS, per_session: int = TURNS_PER_SESSION) -> dict[str, Any]:
    with (
        baseline_server(workdir / "tp-baseline.sqlite") as endpoint,
        parley_server(workdir / "tp-parley") as parley,
    ):
        figures = asyncio.run(_measure(endpoint.url, parley.url, sessions=sessions, per_session=per_session))
    return {
        "turns": sessions * per_session,
        "sessions": sessions,
        "concurrency": CONCURRENCY,
        "blocks": BLOCKS,
        **figures,
        "ratio": figures["parley_turns_per_s"] / figures["endpoint_turns_per_s"],
    }
