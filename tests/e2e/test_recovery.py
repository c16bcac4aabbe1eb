"""Crash and stop the real server mid-turn: the turn resumes where it was, not from the start."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.backends import Backend
from tests.e2e.server import ServerProcess
from tests.e2e.test_server import ALICE, poll, start_running
from tests.graphs.chaos import open_log
from tests.waiting import wait_until


def _runs(db: Path, message_id: str) -> tuple[int, int]:
    """How many times the side-effect step ran for the message, and how many effects it made."""
    with closing(sqlite3.connect(db)) as conn:
        runs = conn.execute(
            "SELECT count(*) FROM step_runs WHERE message_id = ? AND step = 'act'", (message_id,)
        ).fetchone()[0]
        effects = conn.execute("SELECT count(*) FROM effects WHERE message_id = ?", (message_id,)).fetchone()[
            0
        ]
    return runs, effects


def _checkpoints(data: Path, session_id: str) -> int:
    with sqlite3.connect(data / "parley-checkpoints.sqlite") as conn:
        count: int = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = ?", (session_id,)
        ).fetchone()[0]
    return count


def test_sigkill_mid_turn_resumes_after_the_last_completed_step(tmp_path: Path) -> None:
    effects_db = tmp_path / "effects.sqlite"
    open_log(str(effects_db)).close()
    server = ServerProcess(
        tmp_path / "data",
        env={"PARLEY_GRAPH": "tests.graphs.chaos:graph", "CHAOS_EFFECTS_DB": str(effects_db)},
    ).start()
    try:
        with server.client() as client:
            accepted = client.post(
                "/v1/chat", json={"user_id": "alice", "message": "[[slow]] order", "wait": 0}
            ).json()
            # Wait until the side-effect step is done and the slow last step is running...
            wait_until(lambda: _runs(effects_db, accepted["message_id"]) == (1, 1), what="the side effect")
            # ...and its checkpoint is written: input, start, plan, act — four for a session's first turn.
            wait_until(
                lambda: _checkpoints(tmp_path / "data", accepted["session_id"]) >= 4, what="checkpoint"
            )
        server.sigkill()
        server.restart()
        with server.client() as client:
            final = poll(client, accepted["message_id"])
            assert final["status"] == "completed"
            assert final["reply"] == "done: [[slow]] order"
            assert final["attempts"] == 2
            items = client.get(f"/v1/sessions/{accepted['session_id']}/messages", headers=ALICE).json()[
                "items"
            ]
        assert [i["role"] for i in items] == ["user", "assistant"]
        # The completed steps were not run again: the side-effect step ran once, its effect exists once.
        assert _runs(effects_db, accepted["message_id"]) == (1, 1)
    finally:
        server.kill()


@pytest.mark.inprocess_only  # the API process runs the turn; a worker's grace is in test_cluster.py
def test_sigterm_gives_a_running_turn_its_grace_period(
    start_server: Any, backend: Backend, tmp_path: Path
) -> None:
    first: ServerProcess = start_server(PARLEY_SHUTDOWN_GRACE_SECONDS="20")
    with first.client() as client:
        accepted = start_running(client, "[[sleep:1.5]] hi")
    assert first.stop()
    # The turn finished inside the grace period, before the process exited.
    [row] = backend.query(
        "SELECT status, attempts FROM parley_messages WHERE message_id = ?", (accepted["message_id"],)
    )
    assert (row["status"], row["attempts"]) == ("completed", 1)
