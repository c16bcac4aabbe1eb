"""Per-turn cost must not grow with the conversation: turn 1,000 of one session against turn 10.

``Conversation`` drives one session through a ``parley serve`` turn by turn and keeps each turn's latency
and the bytes the server's data directory holds after it; bench/peers/long_session.py runs two side by
side (the bundled assistant and an unbounded ``MessagesState`` graph).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import median, parley_server


def data_bytes(data: Path) -> int:
    """What the data directory holds on disk now (the SQLite files and their write-ahead logs)."""
    return sum(f.stat().st_size for f in data.iterdir() if f.is_file())


@dataclass
class Conversation:
    """One session through the server at ``url`` whose data directory is ``data``."""

    url: str
    data: Path
    session: str | None = None
    timings: list[float] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)

    def turn(self, client: httpx.Client, i: int) -> None:
        body: dict[str, Any] = {"user_id": "bench", "message": f"message number {i}", "wait": 30}
        if self.session:
            body["session_id"] = self.session
        started = time.perf_counter()
        response = client.post(f"{self.url}/v1/chat", json=body)
        self.timings.append(time.perf_counter() - started)
        assert response.status_code == 200 and response.json()["status"] == "completed", response.text
        self.session = response.json()["session_id"]
        self.stored.append(data_bytes(self.data))


def run(workdir: Path, *, turns: int = 1000) -> dict[str, Any]:
    data = workdir / "bounded"
    with parley_server(data) as server, httpx.Client(timeout=30) as client:
        conversation = Conversation(server.url, data)
        for i in range(1, turns + 1):
            conversation.turn(client, i)
    timings, sizes = conversation.timings, conversation.stored
    early = median(timings[5:15])  # turns 6..15, centred on turn 10
    late = median(timings[turns - 10 : turns])  # the last ten turns
    return {
        "turns": turns,
        "turn_10_ms": early * 1000,
        "turn_1000_ms": late * 1000,
        "ratio": late / early,
        "storage_bytes_per_turn_after_100": (sizes[turns - 1] - sizes[99]) / (turns - 100),
    }
