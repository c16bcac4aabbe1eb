"""Human in the loop against the real server: a pause outlives a restart; an action interrupted by a
crash before its checkpoint is not repeated."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tests.backends import Backend
from tests.e2e.server import ServerProcess
from tests.e2e.test_server import ALICE, poll
from tests.waiting import wait_until

ORDER = '[[tool:place_order|{"item": "notebook", "quantity": 3}]] three notebooks'


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        count: int = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return count


def test_a_pause_survives_a_restart_and_resumes(start_server: Any, backend: Backend, tmp_path: Path) -> None:
    first: ServerProcess = start_server()
    with first.client() as client:
        paused = client.post("/v1/chat", json={"user_id": "alice", "message": ORDER}).json()
        assert paused["status"] == "interrupted"
        interrupt_id = paused["interrupt"][0]["id"]
    assert first.stop()

    second: ServerProcess = start_server()
    with second.client() as client:
        session = client.get(f"/v1/sessions/{paused['session_id']}", headers=ALICE).json()
        assert session["status"] == "interrupted"
        assert [i["id"] for i in session["pending_interrupts"]] == [interrupt_id]
        done = client.post(
            f"/v1/sessions/{paused['session_id']}/resume",
            json={"user_id": "alice", "interrupt_id": interrupt_id, "value": {"decision": "approve"}},
        ).json()
        assert done["status"] == "completed"
    assert backend.count("parley_orders") == 1


def test_a_crash_between_an_action_and_its_checkpoint_does_not_repeat_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(
        data,
        env={"PARLEY_GRAPH": "tests.graphs.slow_action:build", "SLOW_ACTION_MARKER": str(tmp_path / "acted")},
    ).start()
    try:
        with server.client() as client:
            paused = client.post("/v1/chat", json={"user_id": "alice", "message": ORDER}).json()
            resume = client.post(
                f"/v1/sessions/{paused['session_id']}/resume",
                json={
                    "user_id": "alice",
                    "interrupt_id": paused["interrupt"][0]["id"],
                    "value": "yes",
                    "wait": 0,
                },
            ).json()
            # The order is committed; the step that placed it has not been checkpointed yet.
            wait_until(lambda: _count(data / "parley.sqlite", "parley_orders") == 1, what="the order")
        server.sigkill()
        server.restart()
        with server.client() as client:
            final = poll(client, resume["message_id"])
        assert final["status"] == "completed"
        assert final["attempts"] == 2
        assert '"ok": true' in final["reply"]
        assert _count(data / "parley.sqlite", "parley_orders") == 1
        assert _count(data / "parley.sqlite", "parley_actions") == 1
    finally:
        server.kill()
