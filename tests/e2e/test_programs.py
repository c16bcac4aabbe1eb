"""Every kind of LangGraph program, hosted by the real server: a Functional API entrypoint, a graph whose state
has no ``messages`` (through its mapping), and several graphs served at once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import Backend
from tests.e2e.server import ServerProcess, parley_env
from tests.e2e.test_server import ALICE, poll, status_of
from tests.graphs.functional import open_log
from tests.sse import STREAM, read_all, tokens
from tests.waiting import wait_until

OPERATOR = {"X-User-Id": "olga", "X-Role": "operator"}
FUNCTIONAL = "tests.graphs.functional:bot"
CUSTOM = "tests.graphs.custom_state:qa"


def _chat(client: httpx.Client, message: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/chat", json={"user_id": "alice", "message": message, **fields})
    assert response.status_code in (200, 202), response.text
    body: dict[str, Any] = response.json()
    return body


def _task_runs(log: Path, text: str) -> int:
    with closing(open_log(str(log))) as conn:
        count: int = conn.execute("SELECT count(*) FROM task_runs WHERE text = ?", (text,)).fetchone()[0]
    return count


def test_a_functional_entrypoint_is_hosted_like_a_graph(start_server: Any, tmp_path: Path) -> None:
    log = tmp_path / "tasks.sqlite"
    open_log(str(log)).close()
    server: ServerProcess = start_server(PARLEY_GRAPHS=f"fn={FUNCTIONAL}", FUNCTIONAL_LOG=str(log))
    with server.client() as client:
        first = _chat(client, "hello")
        assert (first["status"], first["reply"]) == ("completed", "turn 1: hello")
        sid = first["session_id"]
        # ``previous`` carries the conversation: the entrypoint counts the user messages it holds.
        assert _chat(client, "again", session_id=sid)["reply"] == "turn 2: again"

        # An interrupt inside the entrypoint pauses the session; the answer resumes it where it was,
        # and the @task that ran before the question does not run again.
        asked = _chat(client, "[[confirm]] ship it", session_id=sid)
        assert asked["status"] == "interrupted", asked
        [question] = asked["interrupt"]
        assert (question["kind"], question["value"]["question"]) == ("confirm", "Go ahead?")
        resumed = client.post(
            f"/v1/sessions/{sid}/resume",
            json={"user_id": "alice", "interrupt_id": question["id"], "value": "yes"},
        ).json()
        assert resumed["status"] == "completed", resumed
        assert resumed["reply"] == "turn 3: [[confirm]] ship it (answer: yes)"
        assert _task_runs(log, "[[confirm]] ship it") == 1

        # Cancelled mid-turn: the turn leaves no trace in ``previous``.
        running = start_running_in(client, sid, "[[slow]] never mind")
        assert client.post(f"/v1/messages/{running['message_id']}/cancel", headers=ALICE).status_code == 200
        assert poll(client, running["message_id"])["status"] == "cancelled"
        # The stream of a turn shows the entrypoint and its tasks as they finish.
        accepted = _chat(client, "last", session_id=sid, wait=0)
        with client.stream(
            "GET", f"/v1/messages/{accepted['message_id']}/events", headers={**ALICE, **STREAM}
        ) as stream:
            events = read_all(stream)
        updates = [e.data["node"] for e in events if e.event == "update"]
        assert "remember" in updates
        assert "bot" in updates
        assert events[-1].event == "done"
        assert events[-1].data["reply"] == "turn 4: last"


def start_running_in(client: httpx.Client, session_id: str, message: str) -> dict[str, Any]:
    accepted = _chat(client, message, session_id=session_id, wait=0)
    wait_until(
        lambda: (
            client.get(f"/v1/messages/{accepted['message_id']}", headers=ALICE).json()["status"] == "running"
        ),
        what="the turn to run",
    )
    return accepted


def _writes(backend: Backend, session_id: str) -> int:
    """The pending writes LangGraph saved for the session's thread (a finished task's result is one)."""
    if backend.name == "sqlite":
        with closing(sqlite3.connect(backend.data_dir / "parley-checkpoints.sqlite")) as conn:
            found: int = conn.execute(
                "SELECT count(*) FROM writes WHERE thread_id = ?", (session_id,)
            ).fetchone()[0]
        return found
    [row] = backend.query("SELECT count(*) AS n FROM checkpoint_writes WHERE thread_id = ?", (session_id,))
    return int(row["n"])


@pytest.mark.inprocess_only  # the process killed is the one running the turn; a worker's: test_cluster.py
def test_sigkill_mid_entrypoint_does_not_run_a_finished_task_again(
    start_server: Any, backend: Backend, tmp_path: Path
) -> None:
    log = tmp_path / "tasks.sqlite"
    open_log(str(log)).close()
    server: ServerProcess = start_server(PARLEY_GRAPHS=f"fn={FUNCTIONAL}", FUNCTIONAL_LOG=str(log))
    with server.client() as client:
        sid = _chat(client, "hello")["session_id"]
        before = _writes(backend, sid)
        accepted = _chat(client, "[[slow]] remember me", session_id=sid, wait=0)
        # The task has run, and its result is saved (a pending write of the turn's checkpoint): the
        # entrypoint is now in its 3 s ``linger`` task.
        wait_until(lambda: _task_runs(log, "[[slow]] remember me") == 1, what="the task")
        wait_until(lambda: _writes(backend, sid) > before, what="the task's saved result")
        assert status_of(client, accepted["message_id"]) == "running"
    server.sigkill()
    server.restart()
    with server.client() as client:
        final = poll(client, accepted["message_id"])
        assert final["status"] == "completed", final
        assert final["reply"] == "turn 2: [[slow]] remember me"
        assert final["attempts"] == 2
    # The entrypoint ran again from its checkpoint; the finished task's saved result was used.
    assert _task_runs(log, "[[slow]] remember me") == 1


def test_a_graph_without_messages_is_hosted_through_its_mapping(start_server: Any) -> None:
    server: ServerProcess = start_server(PARLEY_GRAPHS=f"qa={CUSTOM}")
    with server.client() as client:
        first = _chat(client, "what is up?")
        assert first["reply"] == "Q1: what is up?"
        # The state persists across turns: ``asked`` has both questions.
        second = _chat(client, "and now?", session_id=first["session_id"])
        assert second["reply"] == "Q2: and now?"
        asked = _chat(client, "[[confirm]] sure?", session_id=first["session_id"])
        assert asked["status"] == "interrupted"
        [question] = asked["interrupt"]
        resumed = client.post(
            f"/v1/sessions/{first['session_id']}/resume",
            json={"user_id": "alice", "interrupt_id": question["id"], "value": "no"},
        ).json()
        assert resumed["reply"] == "Q3: [[confirm]] sure? (answer: no)"


@pytest.mark.inprocess_only
def test_sigkill_mid_turn_of_a_mapped_graph_applies_its_input_once(start_server: Any) -> None:
    server: ServerProcess = start_server(PARLEY_GRAPHS=f"qa={CUSTOM}")
    with server.client() as client:
        sid = _chat(client, "first")["session_id"]
        accepted = _chat(client, "[[slow]] second", session_id=sid, wait=0)

        def noted() -> bool:
            history = client.get(f"/v1/sessions/{sid}/history", headers=ALICE).json()["items"]
            return any(c["message_id"] == accepted["message_id"] and c["node"] == "note" for c in history)

        # The step that appends the question to ``asked`` is saved; the slow step is running.
        wait_until(noted, what="the first step's checkpoint")
        assert status_of(client, accepted["message_id"]) == "running"
    server.sigkill()
    server.restart()
    with server.client() as client:
        final = poll(client, accepted["message_id"])
        assert (final["status"], final["attempts"]) == ("completed", 2)
        # Two questions asked, not three: the restarted turn went on from its checkpoint, not fed again.
        assert final["reply"] == "Q2: [[slow]] second"


def test_two_graphs_served_at_once(start_server: Any, backend: Backend) -> None:
    server: ServerProcess = start_server(
        PARLEY_GRAPHS=f"qa={CUSTOM},fn={FUNCTIONAL}", PARLEY_OPERATOR_HEADER_ENABLED="true"
    )
    with server.client() as client:
        listed = client.get("/v1/graphs", headers=ALICE).json()["items"]
        assert [(g["name"], g["default"], g["kind"], g["input"], g["interrupts"]) for g in listed] == [
            ("qa", True, "graph", "mapped", ["confirm"]),
            ("fn", False, "functional", "messages", None),
        ]
        # No graph named: the first. Each session keeps the graph it was created with.
        qa = _chat(client, "one")
        fn = _chat(client, "one", graph="fn")
        assert (qa["reply"], fn["reply"]) == ("Q1: one", "turn 1: one")
        assert _chat(client, "two", session_id=fn["session_id"])["reply"] == "turn 2: two"
        assert _chat(client, "two", session_id=qa["session_id"], graph="qa")["reply"] == "Q2: two"
        assert client.get(f"/v1/sessions/{qa['session_id']}", headers=ALICE).json()["graph"] == "qa"
        assert client.get(f"/v1/sessions/{fn['session_id']}", headers=ALICE).json()["graph"] == "fn"

        # A session's graph cannot change under it; a graph not served is a bad field. Nothing is stored.
        count = client.get(f"/v1/sessions/{qa['session_id']}", headers=ALICE).json()["message_count"]
        moved = client.post(
            "/v1/chat",
            json={"user_id": "alice", "session_id": qa["session_id"], "message": "x", "graph": "fn"},
        )
        assert moved.status_code == 409
        assert moved.headers["content-type"] == "application/problem+json"
        assert moved.json()["type"].endswith("graph-mismatch")
        unknown = client.post("/v1/chat", json={"user_id": "alice", "message": "x", "graph": "nope"})
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["field"] == "body.graph"
        assert client.get(f"/v1/sessions/{qa['session_id']}", headers=ALICE).json()["message_count"] == count

        # The operator queue names each interrupt's graph, and filters by it.
        _chat(client, "[[confirm]] a", session_id=qa["session_id"])
        _chat(client, "[[confirm]] b", session_id=fn["session_id"])
        queue = client.get("/v1/interrupts", headers=OPERATOR).json()["items"]
        assert {(i["session_id"], i["graph"]) for i in queue} == {
            (qa["session_id"], "qa"),
            (fn["session_id"], "fn"),
        }
        only_fn = client.get("/v1/interrupts", params={"graph": "fn"}, headers=OPERATOR).json()["items"]
        assert [i["session_id"] for i in only_fn] == [fn["session_id"]]

        # The session document names its graph.
        exported = client.get(f"/v1/sessions/{fn['session_id']}/export", headers=ALICE)
        assert exported.status_code == 200, exported.text
        assert json.loads(exported.content)["graph"] == "fn"
        checkpoints = json.loads(exported.content)["checkpoints"]
        # Every checkpoint a turn wrote names the graph (its own namespace of checkpoints).
        tagged = {
            c["metadata"].get("parley_graph") for c in checkpoints if c["metadata"].get("parley_message_id")
        }
        assert tagged == {"fn"}


def test_the_worked_functional_example_runs_as_documented(start_server: Any) -> None:
    server: ServerProcess = start_server(PARLEY_GRAPHS="notes=examples.functional_chat:build")
    with server.client() as client:
        [notes] = client.get("/v1/graphs", headers=ALICE).json()["items"]
        assert (notes["name"], notes["kind"], notes["interrupts"]) == ("notes", "functional", ["confirm"])
        first = _chat(client, "hello")
        assert first["reply"] == "Echo: hello"
        sid = first["session_id"]
        # The model's tokens stream from the @task that calls it, which runs inside the entrypoint (as
        # LangGraph's checkpoint namespace has it).
        with client.stream(
            "GET", f"/v1/messages/{first['message_id']}/events", headers={**ALICE, **STREAM}
        ) as stream:
            events = read_all(stream)
        assert tokens(events) == "Echo: hello"
        assert {(e.data["node"], tuple(e.data["namespace"])) for e in events if e.event == "token"} == {
            ("answer", ("notes",))
        }
        asked = _chat(client, "/forget", session_id=sid)
        [question] = asked["interrupt"]
        assert question["value"]["question"] == "Forget the 2 earlier messages of this conversation?"
        done = client.post(
            f"/v1/sessions/{sid}/resume",
            json={"user_id": "alice", "interrupt_id": question["id"], "value": {"decision": "approve"}},
        ).json()
        assert done["reply"] == "Done: I have forgotten our conversation."
        # Forgotten: the next question finds one earlier message (the notice), not three.
        again = _chat(client, "/forget", session_id=sid)
        assert (
            again["interrupt"][0]["value"]["question"]
            == "Forget the 1 earlier messages of this conversation?"
        )


def test_a_session_whose_graph_is_no_longer_served_fails_its_message_not_the_service(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env={"PARLEY_GRAPHS": f"qa={CUSTOM},fn={FUNCTIONAL}"}).start()
    try:
        with server.client() as client:
            fn = _chat(client, "one", graph="fn")
        assert server.stop()
        server.env["PARLEY_GRAPHS"] = f"qa={CUSTOM}"
        server.start()
        with server.client() as client:
            orphan = _chat(client, "two", session_id=fn["session_id"])
            assert orphan["status"] == "failed"
            assert orphan["error"]["type"] == "graph_unavailable"
            assert "'fn'" in orphan["error"]["detail"]
            # Its data is kept, and the rest of the service works.
            assert client.get(f"/v1/sessions/{fn['session_id']}", headers=ALICE).json()["graph"] == "fn"
            assert _chat(client, "hello")["reply"] == "Q1: hello"
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {"PARLEY_GRAPHS": f"qa={CUSTOM},bad=tests.graphs.custom_state:unmapped"},
            ["graph 'bad' (tests.graphs.custom_state:unmapped)", "no 'messages' key", "parley.hosting.host("],
        ),
        (
            {"PARLEY_GRAPHS": "bad=tests.graphs.custom_state:badly_mapped"},
            ["names the state key 'prompt'", "it has answer, asked, question"],
        ),
        ({"PARLEY_GRAPHS": f"qa={CUSTOM}", "PARLEY_GRAPH": FUNCTIONAL}, ["not both"]),
        ({"PARLEY_GRAPHS": f"Q A={CUSTOM}"}, ["each entry is name=package.module:attribute"]),
    ],
)
def test_a_graph_that_cannot_be_hosted_stops_the_service_at_start(
    env: dict[str, str], says: list[str], tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "parley.cli", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        env=parley_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    for needle in says:
        assert needle in result.stderr
    assert "Traceback" not in result.stderr
