"""Bounded growth with checkpoint retention on: one long session through ``parley serve`` on SQLite.

Per turn it times the request and reads, from the checkpoint file (SQLite's WAL lets a reader in beside
the server), how many bytes that turn stored (its checkpoints and their pending writes); at half way and
at the end, how many bytes the session's data occupies (pages in use, both files: free pages that pruning
left are reused, so the files stop growing); at the end, how many checkpoint rows the session holds.

The bundled assistant's window fills up by turn 20 (40 messages) and then cycles — summarised down to 20,
grown back over 10 turns — so a turn's bytes are compared as means over whole cycles once the window is
full (turns 21-40 against the last 20), and turn 10's are reported beside them.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import median, parley_server

KEEP = 100
PRUNE_INTERVAL_SECONDS = 1.0


def _turn_bytes(checkpoints: Path, session_id: str, message_id: str) -> int:
    """Bytes one turn stored: its checkpoints (state and metadata) and their writes."""
    conn = sqlite3.connect(f"file:{checkpoints}?mode=ro", uri=True, timeout=30)
    try:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND CAST(metadata AS TEXT) LIKE ?",
                (session_id, f"%{message_id}%"),
            )
        ]
        marks = ", ".join("?" for _ in ids)
        states = conn.execute(
            "SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) FROM checkpoints "
            f"WHERE thread_id = ? AND checkpoint_id IN ({marks})",
            (session_id, *ids),
        ).fetchone()[0]
        writes = conn.execute(
            "SELECT coalesce(sum(length(value)), 0) FROM writes "
            f"WHERE thread_id = ? AND checkpoint_id IN ({marks})",
            (session_id, *ids),
        ).fetchone()[0]
        return int(states) + int(writes)
    finally:
        conn.close()


def _rows(checkpoints: Path, session_id: str) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{checkpoints}?mode=ro", uri=True, timeout=30)
    try:
        found = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = ?", (session_id,)).fetchone()
        writes = conn.execute("SELECT count(*) FROM writes WHERE thread_id = ?", (session_id,)).fetchone()
        return int(found[0]), int(writes[0])
    finally:
        conn.close()


def _in_use(data: Path) -> int:
    """Bytes of pages in use in both SQLite files (what is stored, whatever the files' size)."""
    total = 0
    for name in ("parley.sqlite", "parley-checkpoints.sqlite"):
        conn = sqlite3.connect(f"file:{data / name}?mode=ro", uri=True, timeout=30)
        try:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            size = conn.execute("PRAGMA page_size").fetchone()[0]
            total += (int(pages) - int(free)) * int(size)
        finally:
            conn.close()
    return total


def run(
    workdir: Path, *, turns: int = 2000, keep: int = KEEP, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    if turns < 80:
        raise ValueError("at least 80 turns: the window fills by turn 20, and two cycles are compared")
    data = workdir / "retention"
    checkpoints = data / "parley-checkpoints.sqlite"
    timings: list[float] = []
    turn_bytes: list[int] = []
    in_use: dict[int, int] = {}
    env = {
        "PARLEY_CHECKPOINT_KEEP": str(keep),
        "PARLEY_CHECKPOINT_PRUNE_INTERVAL_SECONDS": str(PRUNE_INTERVAL_SECONDS),
        **(extra_env or {}),
    }
    with parley_server(data, **env) as server, httpx.Client(base_url=server.url, timeout=30) as client:
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
            turn_bytes.append(_turn_bytes(checkpoints, sid, response.json()["message_id"]))
            if i in (turns // 2, turns):
                in_use[i] = _in_use(data)
        assert sid is not None
        # One more pass of pruning, so the count is what the session keeps between turns.
        time.sleep(PRUNE_INTERVAL_SECONDS * 2.5)
        rows, writes = _rows(checkpoints, sid)
    early = median(timings[5:15])  # turns 6..15, centred on turn 10
    late = median(timings[turns - 10 : turns])  # the last ten turns
    steady = sum(turn_bytes[20:40]) / 20  # turns 21..40: the window's first two cycles
    last = sum(turn_bytes[turns - 20 :]) / 20
    return {
        "turns": turns,
        "keep": keep,
        "turn_10_ms": early * 1000,
        "turn_last_ms": late * 1000,
        "latency_ratio": late / early,
        "turns_21_40_ms": median(timings[20:40]) * 1000,
        "latency_ratio_to_full_window": late / median(timings[20:40]),
        "turn_10_bytes": turn_bytes[9],
        "turns_21_40_bytes_mean": round(steady),
        "last_20_turns_bytes_mean": round(last),
        "bytes_ratio": last / steady,
        "checkpoint_rows_after": rows,
        "write_rows_after": writes,
        "bytes_in_use_half_way": in_use[turns // 2],
        "bytes_in_use_at_end": in_use[turns],
        "in_use_growth_per_turn_second_half": (in_use[turns] - in_use[turns // 2]) / (turns - turns // 2),
    }
