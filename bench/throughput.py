"""2,000 turns over 200 sessions at concurrency 16: Parley against a minimal endpoint running the same
graph with the same checkpointer — the most this machine can do with that graph behind HTTP.
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


async def _drive(url: str, *, parley: bool, sessions: int, per_session: int) -> float:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def send(session: str | None, text: str) -> str:
            if parley:
                body: dict[str, Any] = {"user_id": "bench", "message": text, "wait": 60}
                if session is not None:
                    body["session_id"] = session
                response = await client.post("/v1/chat", json=body)
                assert response.status_code == 200 and response.json()["status"] == "completed", response.text
                return str(response.json()["session_id"])
            sid = session or str(uuid.uuid4())
            response = await client.post("/chat", json={"session_id": sid, "message": text})
            assert response.status_code == 200, response.text
            return sid

        async def run_all(jobs: list[tuple[str | None, str]]) -> list[str]:
            queue: asyncio.Queue[tuple[int, tuple[str | None, str]]] = asyncio.Queue()
            for item in enumerate(jobs):
                queue.put_nowait(item)
            results: list[str] = [""] * len(jobs)

            async def worker() -> None:
                while not queue.empty():
                    index, (session, text) = queue.get_nowait()
                    results[index] = await send(session, text)

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            return results

        # Untimed: create the sessions (and warm both servers up).
        ids = await run_all([(None, "hello") for _ in range(sessions)])
        # Timed: round-robin over sessions, so concurrent requests hit different sessions.
        jobs = [(ids[s], f"turn {t}") for t in range(per_session) for s in range(sessions)]
        started = time.perf_counter()
        await run_all(jobs)
        elapsed = time.perf_counter() - started
        return len(jobs) / elapsed


def run(
    workdir: Path, *, sessions: int = SESSIONS, per_session: int = TURNS_PER_SESSION, rounds: int = 2
) -> dict[str, Any]:
    endpoint: list[float] = []
    parley: list[float] = []
    # Alternate the two so that drift in the machine's load hits both alike.
    for r in range(rounds):
        with baseline_server(workdir / f"tp-baseline-{r}.sqlite") as server:
            endpoint.append(
                asyncio.run(_drive(server.url, parley=False, sessions=sessions, per_session=per_session))
            )
        with parley_server(workdir / f"tp-parley-{r}") as server:
            parley.append(
                asyncio.run(_drive(server.url, parley=True, sessions=sessions, per_session=per_session))
            )
    best_endpoint, best_parley = max(endpoint), max(parley)
    return {
        "turns": sessions * per_session,
        "sessions": sessions,
        "concurrency": CONCURRENCY,
        "endpoint_turns_per_s": [round(x, 1) for x in endpoint],
        "parley_turns_per_s": [round(x, 1) for x in parley],
        "ratio_best": best_parley / best_endpoint,
        "ratio_per_round": [p / e for p, e in zip(parley, endpoint, strict=True)],
    }
