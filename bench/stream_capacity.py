"""How many event streams one Parley process holds while the active ones stay prompt.

One ``parley serve`` (SQLite, the in-process runner — the embedded default). **Idle streams** are honest
ones: a session whose first turn sleeps for the whole run (``[[sleep:N]]``) has messages queued behind it
(busy policy ``enqueue``, the default), and each queued message is followed by one ``GET
/v1/messages/{id}/events`` — a client waiting for its reply, with a subscription on the bus, a
heartbeat every 15 s (the default) and a look at storage every 30 s. **Active streams**: 100 sessions
each running turns of clock tokens (``[[clock:N]]``) back to back, streamed in the response to ``POST
/v1/chat``; their starts are staggered so that turns begin and end all through the window, as they would
with users. The p99 token delay of the active streams (emission by the model → arrival here) is measured
with 0, 1,000 and 2,000 idle streams open, then with 4,000 and 8,000 as long as every level so far kept
it under 50 ms. The bare sse-starlette app (bench/baseline_sse_app.py) takes the same active load with
the most idle streams Parley was measured with, to show what the client and the machine themselves cost.

The client — every stream, idle or active — runs in this process, on the same two cores as the server.
Because the scripted model runs on the server's event loop, a server that falls behind also emits late,
which a delay timed from emission does not show: each step reports the share of the paced tokens that
were emitted (``tokens_of_paced``) and the worst delay (``max_ms``) beside the percentiles.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.common import baseline_sse_server, parley_deployment, percentile
from bench.idle_client import Connection
from bench.sse_reader import STREAM, StreamResult, read_events

ACTIVE = 100
PACE_SECONDS = 0.1  # 10 tokens a second per active stream: 1,000 a second in all
TOKENS_PER_TURN = 50  # a turn of 5 s
STAGGER_SECONDS = TOKENS_PER_TURN * PACE_SECONDS  # the active streams start one turn apart in all
WINDOW_SECONDS = 10.0  # of which the first STAGGER_SECONDS do not count: not every stream is under way
IDLE_LEVELS = [0, 1000, 2000]  # each measured
IDLE_MORE = [4000, 8000]  # measured while the p99 stays under target
TARGET_P99_SECONDS = 0.050
HOLD_SECONDS = 3600  # the first turn of the idle session: longer than any run
USER = {"X-User-Id": "bench"}


def _cpu_seconds(pid: int) -> float:
    """CPU time the process has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def _settings(idle_max: int) -> dict[str, str]:
    return {
        "PARLEY_REVIEW_KEYWORDS": "",  # the assistant streams live (bench/streams.py)
        "PARLEY_SSE_MAX_STREAMS": str(idle_max + 2 * ACTIVE),
        "PARLEY_MAX_CONNECTIONS": str(idle_max + 4 * ACTIVE),
        # The idle session's turn plus the active ones, none waiting for a slot.
        "PARLEY_MAX_CONCURRENT_TURNS": str(2 * ACTIVE),
        "PARLEY_TURN_TIMEOUT_SECONDS": str(2 * HOLD_SECONDS),
        "PARLEY_SHUTDOWN_GRACE_SECONDS": "1",  # the held turn is not waited for at the end
    }


def _client(connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=httpx.Timeout(30, read=60), limits=limits)


class IdleStreams:
    """Streams that wait: on Parley, of messages queued behind a turn that sleeps; on the baseline, of
    ``GET /idle``. Each is a task holding its connection (bench/idle_client.py); an event on one, or one
    closed by the server, is recorded as unexpected."""

    def __init__(self, url: str, path_of: Callable[[int], str]) -> None:
        self._url = url
        self._path_of = path_of
        self._tasks: list[asyncio.Task[None]] = []
        self.unexpected: list[bytes] = []

    @property
    def open(self) -> int:
        return sum(not task.done() for task in self._tasks)

    async def open_more(self, count: int, *, concurrency: int = 32) -> None:
        opened = asyncio.Queue[None]()
        first = len(self._tasks)

        async def hold(index: int) -> None:
            connection: Connection | None = None
            try:
                connection = await Connection.open(self._url)
                headers = {**USER, "accept": "text/event-stream"}
                status, _ = await connection.request("GET", self._path_of(index), headers=headers)
            finally:
                opened.put_nowait(None)  # open or failed: the opener goes on (and reports a failure)
            try:
                assert status == 200, status
                self.unexpected.append(await connection.read_until_closed())
            finally:
                connection.close()

        for start in range(first, first + count, concurrency):
            batch = range(start, min(start + concurrency, first + count))
            self._tasks.extend(asyncio.create_task(hold(i)) for i in batch)
            for _ in batch:
                await opened.get()
        failed = [t for t in self._tasks if t.done() and t.exception() is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} idle streams failed") from failed[0].exception()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _queued_messages(
    url: str, count: int, *, session: str | None, concurrency: int = 32
) -> tuple[str, list[str]]:
    """``count`` more messages queued in ``session`` — or in a new one, behind a first turn that sleeps;
    the session and the messages' ids."""
    connections = [await Connection.open(url) for _ in range(concurrency)]
    headers = {**USER, "prefer": "respond-async"}
    try:
        if session is None:
            body: dict[str, Any] = {"user_id": "bench", "message": f"[[sleep:{HOLD_SECONDS}]] hold"}
            status, answer = await connections[0].json("POST", "/v1/chat", headers=headers, payload=body)
            assert status == 202, answer
            session = str(answer["session_id"])
        ids: list[str] = []

        async def send(connection: Connection, indexes: range) -> None:
            for index in indexes:
                body = {"user_id": "bench", "message": f"waiting {index}", "session_id": session}
                status, answer = await connection.json("POST", "/v1/chat", headers=headers, payload=body)
                assert status == 202, answer
                assert answer["status"] == "queued", answer
                ids.append(str(answer["message_id"]))

        await asyncio.gather(*(send(c, range(i, count, concurrency)) for i, c in enumerate(connections)))
        return session, ids
    finally:
        for connection in connections:
            connection.close()


async def _active_window(open_turn: Callable[[int], Any], *, window: float) -> tuple[list[float], int]:
    """ACTIVE streams running turns back to back for ``window`` seconds, their starts staggered over
    one turn; the delays of tokens emitted once all are under way, and how many turns ran."""
    started = time.time()
    counted_from = started + STAGGER_SECONDS
    ends = started + window
    delays: list[float] = []
    turns = 0
    # This process is the client of thousands of streams: its own full collections took 130-200 ms
    # here, and a token read after one would be charged to the server. Paused for the window, as
    # timeit does; the server's are what is measured.
    gc.disable()

    async def active(index: int) -> None:
        nonlocal turns
        await asyncio.sleep(index * STAGGER_SECONDS / ACTIVE)
        while time.time() < ends:
            result: StreamResult = await open_turn(index)
            turns += 1
            delays.extend(r - e for e, r in result.tokens if counted_from <= e <= ends)

    try:
        await asyncio.gather(*(active(i) for i in range(ACTIVE)))
    finally:
        gc.enable()
    return delays, turns


def _parley_turn(client: httpx.AsyncClient, sessions: list[str]) -> Callable[[int], Any]:
    message = f"[[pace:{PACE_SECONDS}]] [[clock:{TOKENS_PER_TURN}]] what time is it?"

    async def turn(index: int) -> StreamResult:
        body = {"user_id": "bench", "message": message, "session_id": sessions[index]}
        async with client.stream("POST", "/v1/chat", json=body, headers=STREAM) as response:
            result = await read_events(response)
        assert result.last is not None and result.last[0] == "done", result.kinds
        assert result.kinds["token"] == TOKENS_PER_TURN, result.kinds
        return result

    return turn


def _baseline_turn(client: httpx.AsyncClient) -> Callable[[int], Any]:
    async def turn(index: int) -> StreamResult:
        params: dict[str, Any] = {"tokens": TOKENS_PER_TURN, "pace": PACE_SECONDS}
        async with client.stream("GET", "/stream", params=params) as response:
            return await read_events(response)

    return turn


def _held(steps: list[dict[str, Any]]) -> int | None:
    """The most idle streams with which the active p99 was under target — it and every level below."""
    held = None
    for step in steps:
        if step["p99_ms"] >= TARGET_P99_SECONDS * 1000:
            break
        held = step["idle"]
    return held


def _figures(delays: list[float], turns: int, *, window: float) -> dict[str, Any]:
    # The scripted model runs on the server's event loop: when the loop falls behind, tokens are also
    # emitted late, which their delay does not show (each is timed from its emission) — the share of the
    # tokens the pace asked for that were emitted at all does.
    expected = ACTIVE * (window - STAGGER_SECONDS) / PACE_SECONDS
    return {
        "tokens": len(delays),
        "tokens_of_paced": round(len(delays) / expected, 2),
        "turns": turns,
        "p50_ms": round(percentile(delays, 50) * 1000, 2),
        "p99_ms": round(percentile(delays, 99) * 1000, 2),
        "max_ms": round(max(delays) * 1000, 2),
    }


async def _parley(url: str, pid: int, *, levels: list[int], more: list[int], window: float) -> dict[str, Any]:
    """The active streams' delays with each of ``levels`` idle streams open, then with each of ``more``
    as long as the p99 stays under target."""
    steps: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        active_client = await stack.enter_async_context(_client(ACTIVE))
        active_client.base_url = httpx.URL(url)
        queued: list[str] = []
        session: str | None = None
        idle = IdleStreams(url, lambda i: f"/v1/messages/{queued[i]}/events")
        stack.push_async_callback(idle.close)
        sessions: list[str] = []
        for _ in range(ACTIVE):  # untimed: the active sessions, each with a first turn
            body = {"user_id": "bench", "message": "hello", "wait": 30}
            response = await active_client.post("/v1/chat", json=body)
            assert response.json()["status"] == "completed", response.text
            sessions.append(response.json()["session_id"])
        turn = _parley_turn(active_client, sessions)
        for level in [*levels, *more]:
            if level in more and _held(steps) != steps[-1]["idle"]:
                break  # a level so far missed the target
            started = time.monotonic()
            session, more_ids = await _queued_messages(url, level - len(queued), session=session)
            queued += more_ids
            await idle.open_more(level - idle.open)
            opening = round(time.monotonic() - started, 1)
            cpu = _cpu_seconds(pid)
            delays, turns = await _active_window(turn, window=window)
            assert idle.open == level and not idle.unexpected, (idle.open, idle.unexpected[:1])
            step = {
                "idle": level,
                "opening_seconds": opening,
                **_figures(delays, turns, window=window),
                "server_cpu_share": round((_cpu_seconds(pid) - cpu) / window, 2),
                "server_rss_mb": _rss_mb(pid),
            }
            print(f"-- streams capacity: Parley {step}", flush=True)
            steps.append(step)
    return {"steps": steps}


async def _baseline(url: str, *, idle_count: int, window: float) -> dict[str, Any]:
    async with _client(ACTIVE) as active_client:
        active_client.base_url = httpx.URL(url)
        idle = IdleStreams(url, lambda i: "/idle")
        try:
            await idle.open_more(idle_count)
            delays, turns = await _active_window(_baseline_turn(active_client), window=window)
        finally:
            await idle.close()
    return {"idle": idle_count, **_figures(delays, turns, window=window)}


def run(workdir: Path, *, quick: bool = False) -> dict[str, Any]:
    levels, more = ([0, 200], []) if quick else (IDLE_LEVELS, IDLE_MORE)
    window = STAGGER_SECONDS + 3 if quick else WINDOW_SECONDS
    env = _settings(max(levels + more))
    with parley_deployment(workdir / "capacity-parley", env=env) as server:
        assert server.process is not None
        parley = asyncio.run(_parley(server.url, server.process.pid, levels=levels, more=more, window=window))
    with baseline_sse_server() as baseline:
        bare = asyncio.run(_baseline(baseline.url, idle_count=parley["steps"][-1]["idle"], window=window))
    print(f"-- streams capacity: baseline {bare}", flush=True)
    return {
        "active_streams": ACTIVE,
        "pace_ms": PACE_SECONDS * 1000,
        "tokens_per_turn": TOKENS_PER_TURN,
        "window_seconds": window,
        "parley": parley,
        "baseline": bare,
        "most_idle_with_p99_under_50ms": _held(parley["steps"]),
    }
