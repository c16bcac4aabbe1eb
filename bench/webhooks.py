"""Completion webhooks: how soon after a message ends its webhook reaches the receiver, and how many
deliveries a second one ``parley serve`` (SQLite, in-process runner) sends while it runs turns.

- **Delay**: sequential inline turns, each with a ``callback_url``. For each, two delays from the moment
  its terminal status was stored (the message's ``updated_at``, written by the transaction that ends it):
  until its webhook arrived at the receiver, and — the baseline, measured on the same turns — until the
  HTTP client waiting inline had its ``200``. Same machine, same clock (``time.time()``).
- **Throughput**: turns over many sessions at concurrency 16, in rotating blocks with and without a
  ``callback_url``: turns per second with webhooks against without (the turn throughput of the same run),
  and deliveries per second — deliveries over the time from a block's first request to its last
  delivery's arrival (held to the pace of the turns that make them).
- **Drain**: the deliverer's own pace — a backlog of deliveries made while the receiver was down, sent
  once it is up; deliveries per second against the turns per second of the same run.

The receiver (``bench/webhook_sink.py``) is a bare ASGI app under uvicorn in a process of its own,
answering ``204`` at once. Everything runs on the same two cores.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import Server, median, parley_server, percentile, poll

CONCURRENCY = 16


def _sink() -> Server:
    return Server(
        [
            "-m",
            "uvicorn",
            "bench.webhook_sink:app",
            "--port",
            "{port}",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={},
        ready_path="/stats",
    )


def _parley(workdir: Path, *, retry_base: str = "5", retry_max: str = "3600", name: str = "parley") -> Server:
    return parley_server(
        workdir / name,
        PARLEY_WEBHOOK_RETRY_BASE_SECONDS=retry_base,
        PARLEY_WEBHOOK_RETRY_MAX_SECONDS=retry_max,
        PARLEY_WEBHOOK_ALLOWED_HOSTS="127.0.0.1/32",
        PARLEY_WEBHOOK_SECRET="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        PARLEY_REVIEW_KEYWORDS="",
    )


def _ended_at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _arrivals(sink: Server) -> list[tuple[str, float, str]]:
    found: list[list[Any]] = httpx.get(f"{sink.url}/stats", timeout=30).json()
    return [(str(a[0]), float(a[1]), str(a[2])) for a in found]


def _arrivals_at_least(sink: Server, count: int, *, within: float) -> list[tuple[str, float, str]]:
    def enough() -> list[tuple[str, float, str]] | None:
        found = _arrivals(sink)
        return found if len(found) >= count else None

    arrivals: list[tuple[str, float, str]] = poll(enough, within=within)
    return arrivals


def _measure_delay(parley: Server, sink: Server, *, turns: int) -> dict[str, float]:
    callback = f"{sink.url}/hooks"
    httpx.delete(f"{sink.url}/stats", timeout=30)
    inline: list[float] = []
    with httpx.Client(base_url=parley.url, timeout=60) as client:
        session = None
        for i in range(turns + 10):
            body: dict[str, Any] = {"user_id": "bench", "message": f"turn {i}", "wait": 30}
            body["callback_url"] = callback
            if session is not None:
                body["session_id"] = session
            answer = client.post("/v1/chat", json=body)
            answered = time.time()
            assert answer.status_code == 200, answer.text
            message = answer.json()
            session = message["session_id"]
            if i >= 10:  # the first ten warm up
                inline.append(answered - _ended_at(message["updated_at"]))
    everything = _arrivals_at_least(sink, turns + 10, within=60)
    ordered = sorted(everything, key=lambda a: _ended_at(a[2]))[10:]
    delays = [arrived - _ended_at(ended) for _, arrived, ended in ordered]
    return {
        "webhook_p50_ms": round(median(delays) * 1000, 2),
        "webhook_p99_ms": round(percentile(delays, 99) * 1000, 2),
        "inline_p50_ms": round(median(inline) * 1000, 2),
        "inline_p99_ms": round(percentile(inline, 99) * 1000, 2),
        "webhook_over_inline_p50": round(median(delays) / median(inline), 2),
    }


async def _block(
    parley: Server, sink: Server, sessions: list[str], *, turns: int, callback: bool
) -> dict[str, float]:
    """One block of ``turns`` inline turns round-robin over ``sessions``: its seconds to the last reply,
    and (with callbacks) to the last delivery."""
    before = len(_arrivals(sink))
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    jobs = [sessions[i % len(sessions)] for i in range(turns)]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    async with httpx.AsyncClient(base_url=parley.url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                session = queue.get_nowait()
                body: dict[str, Any] = {
                    "user_id": "bench",
                    "session_id": session,
                    "message": "hi",
                    "wait": 30,
                }
                if callback:
                    body["callback_url"] = f"{sink.url}/hooks"
                answer = await client.post("/v1/chat", json=body)
                assert answer.status_code == 200 and answer.json()["status"] == "completed", answer.text

        started = time.time()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        replied = time.time() - started
    result = {"turns": float(turns), "reply_seconds": replied}
    if callback:
        arrivals = _arrivals_at_least(sink, before + turns, within=120)
        last = max(arrived for _, arrived, _ in arrivals[before:])
        result["delivered_seconds"] = last - started
    return result


def _measure_throughput(
    parley: Server, sink: Server, *, sessions: int, per_block: int, blocks: int
) -> dict[str, float]:
    async def run() -> dict[str, float]:
        async with httpx.AsyncClient(base_url=parley.url, timeout=60) as client:
            made = [
                (
                    await client.post("/v1/chat", json={"user_id": "bench", "message": "hello", "wait": 30})
                ).json()
                for _ in range(sessions)
            ]
        ids = [m["session_id"] for m in made]
        with_hooks: list[dict[str, float]] = []
        without: list[dict[str, float]] = []
        for b in range(blocks):
            # Each goes first half the time.
            order = [True, False] if b % 2 == 0 else [False, True]
            for callback in order:
                result = await _block(parley, sink, ids, turns=per_block, callback=callback)
                (with_hooks if callback else without).append(result)
        turns_with = sum(r["turns"] for r in with_hooks) / sum(r["reply_seconds"] for r in with_hooks)
        turns_without = sum(r["turns"] for r in without) / sum(r["reply_seconds"] for r in without)
        deliveries = sum(r["turns"] for r in with_hooks) / sum(r["delivered_seconds"] for r in with_hooks)
        return {
            "turns_per_s_with_webhooks": round(turns_with, 1),
            "turns_per_s_without": round(turns_without, 1),
            "turn_throughput_ratio": round(turns_with / turns_without, 3),
            "deliveries_per_s": round(deliveries, 1),
            "deliveries_over_turns_without": round(deliveries / turns_without, 3),
        }

    return asyncio.run(run())


def _measure_drain(workdir: Path, *, messages: int) -> dict[str, float]:
    """Deliveries a second from a backlog: ``messages`` turns end while the receiver is down (their
    deliveries wait, retried every 0.1-0.2 s), then it comes up and the time to the last arrival is taken —
    the deliverer's own pace, not held to the pace of turns."""
    sink = _sink()  # its port is chosen now; nothing listens there until it is entered
    parley = _parley(workdir, retry_base="0.1", retry_max="0.2", name="parley-drain")
    with parley:

        async def post_all() -> None:
            limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
            async with httpx.AsyncClient(base_url=parley.url, timeout=60, limits=limits) as client:
                semaphore = asyncio.Semaphore(CONCURRENCY)

                async def one(i: int) -> None:
                    async with semaphore:
                        body = {
                            "user_id": "bench",
                            "message": f"m{i}",
                            "callback_url": f"{sink.url}/hooks",
                            "wait": 30,
                        }
                        answer = await client.post("/v1/chat", json=body)
                        assert answer.status_code == 200, answer.text

                await asyncio.gather(*(one(i) for i in range(messages)))

        asyncio.run(post_all())
        with sink:
            up = time.time()
            arrivals = _arrivals_at_least(sink, messages, within=300)
    drained = max(arrived for _, arrived, _ in arrivals) - up
    return {"drain_deliveries": float(messages), "drain_deliveries_per_s": round(messages / drained, 1)}


def run(workdir: Path, *, quick: bool = False) -> dict[str, Any]:
    with ExitStack() as stack:
        sink = stack.enter_context(_sink())
        parley = stack.enter_context(_parley(workdir))
        delay = _measure_delay(parley, sink, turns=50 if quick else 300)
        throughput = _measure_throughput(
            parley,
            sink,
            sessions=20 if quick else 100,
            per_block=100 if quick else 250,
            blocks=2 if quick else 4,
        )
    drain = _measure_drain(workdir, messages=200 if quick else 1000)
    drain["drain_over_turns_without"] = round(
        drain["drain_deliveries_per_s"] / throughput["turns_per_s_without"], 2
    )
    return {**delay, **throughput, **drain, "concurrency": CONCURRENCY}
