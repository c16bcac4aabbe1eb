"""Kill the server with SIGKILL at random moments while clients talk to it: nothing accepted is lost,
nothing is done twice, every transcript stays in order."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.server import ServerProcess

SESSIONS = 10
MESSAGES_PER_SESSION = 14
KILLS = 10
TERMINAL = {"completed", "interrupted", "failed", "cancelled"}


class Client:
    """Sends every message until it is acknowledged, retrying with the same Idempotency-Key."""

    def __init__(self, server: ServerProcess, rng: random.Random) -> None:
        self.server = server
        self.rng = rng
        self.session_ids: list[str | None] = [None] * SESSIONS
        self.sent: dict[int, list[tuple[str, str]]] = {s: [] for s in range(SESSIONS)}  # text, message_id
        self.connection_errors = 0
        self.done = threading.Event()

    def post(self, body: dict[str, Any], key: str) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, f"message {key} never acknowledged"
            try:
                response = httpx.post(
                    f"{self.server.base_url}/v1/chat", json=body, headers={"Idempotency-Key": key}, timeout=10
                )
            except httpx.TransportError:
                self.connection_errors += 1
                time.sleep(0.05)
                continue
            if response.status_code == 503:  # starting or stopping
                time.sleep(0.05)
                continue
            assert response.status_code in (200, 202), response.text
            result: dict[str, Any] = response.json()
            return result

    def run(self) -> None:
        try:
            for i in range(MESSAGES_PER_SESSION):
                for s in range(SESSIONS):
                    text = f"s{s} m{i}"
                    body: dict[str, Any] = {"user_id": "chaos", "message": text, "wait": 0}
                    if self.session_ids[s] is not None:
                        body["session_id"] = self.session_ids[s]
                    accepted = self.post(body, key=f"{s}:{i}")
                    self.session_ids[s] = accepted["session_id"]
                    self.sent[s].append((text, accepted["message_id"]))
                    time.sleep(self.rng.uniform(0.0, 0.03))
        finally:
            self.done.set()


def test_sigkill_at_random_moments_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    effects_db = tmp_path / "effects.sqlite"
    server = ServerProcess(
        tmp_path / "data",
        env={
            "PARLEY_GRAPH": "tests.graphs.chaos:graph",
            "CHAOS_EFFECTS_DB": str(effects_db),
            # A message killed mid-turn again and again must still get through this test's kills.
            "PARLEY_MAX_ATTEMPTS": str(KILLS + 2),
            "PARLEY_LOG_LEVEL": "warning",
        },
    )
    server.start()
    client = Client(server, rng)
    sender = threading.Thread(target=client.run, daemon=True)
    try:
        sender.start()
        kills = 0
        while kills < KILLS:
            time.sleep(rng.uniform(0.2, 0.9))
            server.sigkill()
            kills += 1
            server.restart()
        sender.join(timeout=180)
        assert client.done.is_set(), "the client did not finish"
        assert not sender.is_alive()

        statuses: dict[str, dict[str, Any]] = {}
        with httpx.Client(base_url=server.base_url, timeout=30, headers={"X-User-Id": "chaos"}) as http:
            deadline = time.monotonic() + 120
            for messages in client.sent.values():
                for _, message_id in messages:
                    while True:
                        body = http.get(f"/v1/messages/{message_id}").json()
                        if body["status"] in TERMINAL or time.monotonic() > deadline:
                            break
                        time.sleep(0.05)
                    statuses[message_id] = body
            transcripts = {
                s: http.get(f"/v1/sessions/{sid}/messages", params={"limit": 200}).json()["items"]
                for s, sid in enumerate(client.session_ids)
            }
    finally:
        server.kill()

    with sqlite3.connect(effects_db) as conn:
        effects = dict(
            conn.execute("SELECT message_id, count(*) FROM effects GROUP BY message_id").fetchall()
        )
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]

    accepted = sum(len(m) for m in client.sent.values())
    completed = sum(1 for b in statuses.values() if b["status"] == "completed")
    lost = sum(1 for b in statuses.values() if b["status"] not in TERMINAL)
    duplicated_lines = 0
    out_of_order = 0
    broken_transcripts = 0
    for s, messages in client.sent.items():
        items = transcripts[s]
        users = [(i["content"], i["message_id"]) for i in items if i["role"] == "user"]
        duplicated_lines += len(users) - len(set(users))
        if users != messages:
            out_of_order += 1
        pairs_ok = len(items) % 2 == 0 and all(
            (items[k]["role"], items[k + 1]["role"]) == ("user", "assistant")
            and items[k + 1]["message_id"] == items[k]["message_id"]
            and items[k + 1]["content"] == f"done: {items[k]['content']}"
            for k in range(0, len(items) - 1, 2)
        )
        if not pairs_ok:
            broken_transcripts += 1
    duplicated_effects = sum(1 for n in effects.values() if n > 1)
    retried = sum(1 for b in statuses.values() if b["attempts"] > 1)
    print(
        f"\nchaos seed={seed}: kills={KILLS} accepted={accepted} completed={completed} lost={lost} "
        f"duplicated={duplicated_lines + duplicated_effects} out_of_order_sessions={out_of_order} "
        f"effects={sum(effects.values())} step_runs={runs} resumed_turns={retried} "
        f"client_connection_errors={client.connection_errors} broken_transcripts={broken_transcripts}"
    )
    not_completed = {
        k: (v["status"], v["attempts"], v["error"]) for k, v in statuses.items() if v["status"] != "completed"
    }
    print("not completed:", not_completed)
    assert accepted == SESSIONS * MESSAGES_PER_SESSION
    assert lost == 0
    assert completed == accepted, not_completed
    assert broken_transcripts == 0
    assert duplicated_lines == 0
    assert out_of_order == 0
    assert set(effects) == {mid for messages in client.sent.values() for _, mid in messages}
    assert duplicated_effects == 0
