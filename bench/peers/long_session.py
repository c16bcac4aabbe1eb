"""One long session, turn 1 to turn N, through two ``parley serve`` on SQLite side by side: the bundled
assistant (a window of recent messages and a running summary) and the same scripted model in a plain
``MessagesState`` graph that keeps every message (bench/peers/graph.py: ``build_plain``). Same
checkpointer, same settings (checkpoint retention included); the two take turns one by one, so the
machine's load hits both alike. Each turn's latency and the bytes each data directory holds after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from bench.bounded import Conversation
from bench.common import median, parley_server

GRAPHS = {"assistant": None, "plain": "bench.peers.graph:build_plain"}


def run(workdir: Path, *, turns: int) -> dict[str, Any]:
    conversations: dict[str, Conversation] = {}
    with httpx.Client(timeout=60) as client:
        servers = {
            name: parley_server(workdir / f"long-{name}", **({"PARLEY_GRAPH": graph} if graph else {}))
            for name, graph in GRAPHS.items()
        }
        with servers["assistant"] as assistant, servers["plain"] as plain:
            for name, server in (("assistant", assistant), ("plain", plain)):
                conversations[name] = Conversation(server.url, workdir / f"long-{name}")
            for i in range(1, turns + 1):
                order = list(conversations.values())
                for conversation in order if i % 2 else order[::-1]:
                    conversation.turn(client, i)
    early = min(10, turns)
    result: dict[str, Any] = {"turns": turns}
    for name, conversation in conversations.items():
        timings = conversation.timings
        result[name] = {
            "turn_10_ms": round(median(timings[max(0, early - 5) : early + 5]) * 1000, 2),
            "last_10_ms": round(median(timings[-10:]) * 1000, 2),
            "stored_mb": round(conversation.stored[-1] / 1e6, 2),
            "latency_ms": [round(t * 1000, 2) for t in timings],
            "stored_bytes": conversation.stored,
        }
    base = result["assistant"]
    for name in conversations:
        row = result[name]
        row["last_10_vs_assistant"] = round(row["last_10_ms"] / base["last_10_ms"], 2)
        row["growth_last_over_turn_10"] = round(row["last_10_ms"] / row["turn_10_ms"], 2)
        row["stored_vs_assistant"] = (
            round(row["stored_mb"] / base["stored_mb"], 2) if base["stored_mb"] else None
        )
    return result
