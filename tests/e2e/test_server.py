"""The real ``parley serve`` process over real HTTP, with real SQLite on disk."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import Backend, PostgresDatabases
from tests.e2e.server import REPO, ServerProcess, parley_env, worker_process
from tests.waiting import wait_until

ALICE = {"X-User-Id": "alice"}


def status_of(client: httpx.Client, message_id: str) -> str:
    status: str = client.get(f"/v1/messages/{message_id}", headers=ALICE).json()["status"]
    return status


def start_running(client: httpx.Client, message: str) -> dict[str, Any]:
    """Send a message without waiting, and return once its turn is running."""
    accepted: dict[str, Any] = client.post(
        "/v1/chat", json={"user_id": "alice", "message": message, "wait": 0}
    ).json()
    wait_until(lambda: status_of(client, accepted["message_id"]) == "running", what="the turn to run")
    return accepted


def poll(client: httpx.Client, message_id: str, *, deadline: float = 20.0) -> dict[str, Any]:
    end = time.monotonic() + deadline
    while True:
        body: dict[str, Any] = client.get(f"/v1/messages/{message_id}", headers=ALICE).json()
        if body["status"] in ("completed", "interrupted", "failed", "cancelled"):
            return body
        assert time.monotonic() < end, body
        time.sleep(0.02)


def test_chat_inline_then_acknowledged_then_polled(start_server: Any) -> None:
    server: ServerProcess = start_server()
    with server.client() as client:
        inline = client.post("/v1/chat", json={"user_id": "alice", "message": "hello"})
        assert inline.status_code == 200
        assert inline.json()["reply"] == "Echo: hello"
        sid = inline.json()["session_id"]

        slow = client.post(
            "/v1/chat",
            json={"user_id": "alice", "session_id": sid, "message": "[[sleep:0.5]] later"},
            headers={"Prefer": "respond-async"},
        )
        assert slow.status_code == 202
        location = slow.headers["location"]
        final = poll(client, location.rsplit("/", 1)[1])
        assert final["status"] == "completed"
        assert final["reply"] == "Echo: later"

        session = client.get(f"/v1/sessions/{sid}", headers=ALICE).json()
        assert session["status"] == "idle"
        assert session["message_count"] == 2
        items = client.get(f"/v1/sessions/{sid}/messages", headers=ALICE).json()["items"]
        assert [i["content"] for i in items] == ["hello", "Echo: hello", "[[sleep:0.5]] later", "Echo: later"]

        assert client.delete(f"/v1/sessions/{sid}", headers=ALICE).status_code == 204
        assert client.get(f"/v1/sessions/{sid}", headers=ALICE).status_code == 404
    assert server.stop()


def test_sessions_survive_a_restart(start_server: Any, tmp_path: Path) -> None:
    first: ServerProcess = start_server(PARLEY_GRAPH="tests.graphs.counting:graph")
    with first.client() as client:
        sid = client.post("/v1/chat", json={"user_id": "alice", "message": "one"}).json()["session_id"]
        client.post("/v1/chat", json={"user_id": "alice", "session_id": sid, "message": "two"})
    assert first.stop()

    second: ServerProcess = start_server(PARLEY_GRAPH="tests.graphs.counting:graph")
    with second.client() as client:
        reply = client.post(
            "/v1/chat", json={"user_id": "alice", "session_id": sid, "message": "three"}
        ).json()
        # The graph state came back from the checkpoint: it has seen all three messages.
        assert json.loads(reply["reply"])["seen"] == 3
        items = client.get(f"/v1/sessions/{sid}/messages", headers=ALICE).json()["items"]
        assert [i["content"] for i in items if i["role"] == "user"] == ["one", "two", "three"]


def test_a_message_acknowledged_before_a_stop_is_finished_after_restart(
    start_server: Any, tmp_path: Path
) -> None:
    first: ServerProcess = start_server(PARLEY_SHUTDOWN_GRACE_SECONDS="0")
    with first.client() as client:
        # Stop the server under a running turn.
        accepted = start_running(client, "[[sleep:5]] long")
    assert first.stop()
    second: ServerProcess = start_server()
    with second.client() as client:
        final = poll(client, accepted["message_id"])
        assert final["status"] == "completed"
        assert final["reply"] == "Echo: long"
        # Stopping is not the turn's fault: the interrupted start does not count as an attempt.
        assert final["attempts"] == 1


def test_user_supplied_graph_keeps_turns_of_a_session_in_order(start_server: Any) -> None:
    server: ServerProcess = start_server(PARLEY_GRAPH="tests.graphs.counting:graph")
    with server.client() as client:
        sid = client.post("/v1/chat", json={"user_id": "alice", "message": "start"}).json()["session_id"]

        def send(i: int) -> dict[str, Any]:
            r = client.post(
                "/v1/chat",
                json={"user_id": "alice", "session_id": sid, "message": f"m{i} [[sleep:0.01]]", "wait": 0},
            )
            assert r.status_code == 202
            body: dict[str, Any] = r.json()
            return body

        with ThreadPoolExecutor(max_workers=12) as pool:
            accepted = list(pool.map(send, range(24)))
        for body in accepted:
            assert poll(client, body["message_id"])["status"] == "completed"
        items = client.get(f"/v1/sessions/{sid}/messages", params={"limit": 200}, headers=ALICE).json()[
            "items"
        ]
    assert len(items) == 50
    for k in range(25):
        report = json.loads(items[2 * k + 1]["content"])
        assert report == {**report, "seen": k + 1, "last": items[2 * k]["content"], "max_session": 1}


def test_refuses_to_start_when_the_database_cannot_be_opened(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = subprocess.run(
        [sys.executable, "-m", "parley.cli", "serve", "--port", "0", "--data-dir", str(blocker / "data")],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "cannot open the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_refuses_to_start_with_a_graph_it_cannot_load(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "parley.cli",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--graph",
            "tests.graphs.counting:no_messages",
        ],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no 'messages' key" in result.stderr


@pytest.mark.postgres_only
@pytest.mark.inprocess_only
def test_turns_on_one_postgresql_database_are_run_in_process_or_by_workers_never_both(
    start_server: Any, backend: Backend, tmp_path: Path
) -> None:
    server: ServerProcess = start_server()
    refused = subprocess.run(
        [sys.executable, "-m", "parley.cli", "worker"],
        env=parley_env(backend.env()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2, refused.stderr
    assert "runs turns in-process on this database" in refused.stderr
    assert "Traceback" not in refused.stderr
    second = ServerProcess(tmp_path / "second", env=backend.env())
    with pytest.raises(RuntimeError, match="another Parley process runs turns on this database"):
        second.start()
    server.kill()
    # Once the in-process server is gone, workers may start; and then an in-process server may not.
    worker = worker_process(tmp_path / "w", env=backend.env()).start()
    try:
        third = ServerProcess(tmp_path / "third", env=backend.env())
        with pytest.raises(RuntimeError, match="another Parley process runs turns on this database"):
            third.start()
    finally:
        worker.kill()


@pytest.mark.postgres_only
@pytest.mark.inprocess_only
def test_an_instance_on_an_unmigrated_database_is_not_ready_until_parley_migrate(
    postgres_databases: PostgresDatabases, backend: Backend, tmp_path: Path
) -> None:
    url = postgres_databases.create_empty()
    env = {"PARLEY_DATABASE_URL": url, "PARLEY_RUNNER": "queue"}
    server = ServerProcess(tmp_path / "data", env=env, command=None)
    server.command = ["serve", "--port", str(server.port), "--no-migrate"]
    server.ready_line = "parley ready"  # it serves, but must not say it is ready
    try:
        server.start()
        with server.client() as client:
            not_ready = client.get("/readyz")
            assert not_ready.status_code == 503
            assert "run `parley migrate`" in not_ready.json()["detail"]
            migrated = subprocess.run(
                [sys.executable, "-m", "parley.cli", "migrate"],
                env=parley_env(env),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert migrated.returncode == 0, migrated.stderr
            assert "schema version" in migrated.stdout
            wait_until(lambda: client.get("/readyz").status_code == 200, what="ready once migrated")
    finally:
        server.kill()
        postgres_databases.drop(url)
