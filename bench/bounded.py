"""Per-turn cost must not grow with the conversation: turn 1,000 of one session against turn 10."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import median, parley_server


def run(workdir: Path, *, turns: int = 1000) -> dict[str, Any]:
    data = workdir / "bounded"
    timings: list[float] = []
    sizes: dict[int, int] = {}
    with parley_server(data) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        sid = None
        for i in range(1, turns + 1):
            body: dict[str, Any] = {"user_id": "bench", "message": f"message number {i}", "wait": 30}
            if sid:
                body["session_id"] = sid
            started = time.perf_counter()
            response = client.post("/v1/chat", json=body)
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200 and response.json()["status"] == "completed", response.text
            sid = response.json()["session_id"]
            if i in (100, turns):
                sizes[i] = sum(f.stat().st_size for f in data.iterdir())
    early = median(timings[5:15])  # turns 6..15, centred on turn 10
    late = median(timings[turns - 10 : turns])  # the last ten turns
    return {
        "turns": turns,
        "turn_10_ms": early * 1000,
        "turn_1000_ms": late * 1000,
        "ratio": late / early,
        "storage_bytes_per_turn_after_100": (sizes[turns] - sizes[100]) / (turns - 100),
    }
