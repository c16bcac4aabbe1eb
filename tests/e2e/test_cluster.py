"""The scale-out mode as deployed: two API instances and two workers from ``deploy/Procfile`` on one
PostgreSQL database. Messages go in through one instance and are polled through the other; a worker is
killed mid-turn; PostgreSQL itself is restarted under load. The counts are printed (``-s`` shows them).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import Backend
from tests.conftest import require_service
from tests.e2e.deployments import Deployment
from tests.e2e.test_server import ALICE, poll
from tests.graphs.ledger import open_ledger
from tests.waiting import wait_until

pytestmark = pytest.mark.queue_only

SESSIONS = 20
PER_SESSION = 10
STALLED_SECONDS = 3.0


def _ledger_runs(path: Path) -> list[dict[str, Any]]:
    with closing(open_ledger(str(path))) as conn:
        conn.row_factory = lambda cursor, row: dict(zip([c[0] for c in cursor.description], row, strict=True))
        return list(conn.execute("SELECT * FROM runs ORDER BY id"))


def _cluster(make: Callable[..., Deployment], ledger: Path, **env: str) -> Deployment:
    open_ledger(str(ledger)).close()
    return make(
        PARLEY_GRAPH="tests.graphs.ledger:graph",
        LEDGER_DB=str(ledger),
        PARLEY_WORKER_STALLED_SECONDS=str(STALLED_SECONDS),
        **env,
    )


def test_two_instances_and_two_workers_keep_each_session_in_order_through_a_worker_kill(
    make_deployment: Callable[..., Deployment], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite"
    cluster = _cluster(make_deployment, ledger)
    a, b = cluster.base_urls
    assert len(cluster.workers) == 2
    # One session per thread; a session's messages are sent one after another (each acknowledged at once,
    # alternating between the instances), the sessions all at the same time.
    accepted: dict[int, list[dict[str, Any]]] = defaultdict(list)

    def send(session: int) -> None:
        with httpx.Client(timeout=30) as client:
            session_id = None
            for k in range(PER_SESSION):
                url = (a, b)[k % 2]
                body: dict[str, Any] = {
                    "user_id": "alice",
                    "message": f"s{session} m{k} [[sleep:0.05]]",
                    "wait": 0,
                }
                if session_id is not None:
                    body["session_id"] = session_id
                response = client.post(f"{url}/v1/chat", json=body)
                assert response.status_code == 202, response.text
                accepted[session].append(response.json())
                session_id = response.json()["session_id"]

    senders = [threading.Thread(target=send, args=(i,)) for i in range(SESSIONS)]
    for thread in senders:
        thread.start()

    # Once both workers have been taking turns, kill the one running a long turn: the kill lands mid-turn
    # for certain (and wherever else that worker was, too).
    def both_busy() -> bool:
        finished = [r for r in _ledger_runs(ledger) if r["ended"] is not None]
        return len(finished) >= SESSIONS * PER_SESSION // 4 and len({r["pid"] for r in finished}) >= 2

    wait_until(both_busy, timeout=30, what="both workers taking turns")
    with httpx.Client(base_url=a, timeout=30) as client:
        held = client.post(
            "/v1/chat", json={"user_id": "alice", "message": "hold [[sleep:5]]", "wait": 0}
        ).json()

    def held_run() -> dict[str, Any] | None:
        return next(
            (r for r in _ledger_runs(ledger) if r["message_id"] == held["message_id"] and r["ended"] is None),
            None,
        )

    wait_until(lambda: held_run() is not None, timeout=30, what="the long turn to run")
    victim_run = held_run()
    assert victim_run is not None
    victim = next(w for w in cluster.workers if w.process is not None and w.process.pid == victim_run["pid"])
    victim.sigkill()
    killed_at = time.monotonic()
    accepted[SESSIONS].append(held)
    for thread in senders:
        thread.join(timeout=60)
    assert sum(len(v) for v in accepted.values()) == SESSIONS * PER_SESSION + 1

    # Every message completes; each is polled through the instance it was not sent to.
    with httpx.Client(base_url=b, timeout=30) as on_b, httpx.Client(base_url=a, timeout=30) as on_a:
        finals = {
            m["message_id"]: poll((on_b, on_a)[k % 2], m["message_id"], deadline=90)
            for messages in accepted.values()
            for k, m in enumerate(messages)
        }
        transcripts = {
            messages[0]["session_id"]: on_a.get(
                f"/v1/sessions/{messages[0]['session_id']}/messages", params={"limit": 200}, headers=ALICE
            ).json()["items"]
            for messages in accepted.values()
        }
    assert {f["status"] for f in finals.values()} == {"completed"}, [
        f for f in finals.values() if f["status"] != "completed"
    ]

    # In order: the k-th reply of a session saw exactly k+1 user messages, the last being the k-th sent.
    for session, messages in accepted.items():
        if session == SESSIONS:
            continue  # the held message's session: one message
        items = transcripts[messages[0]["session_id"]]
        assert [i["role"] for i in items] == ["user", "assistant"] * PER_SESSION
        for k in range(PER_SESSION):
            reply = json.loads(items[2 * k + 1]["content"])
            assert reply == {"seen": k + 1, "last": f"s{session} m{k} [[sleep:0.05]]"}, (session, k, reply)

    # Never two turns of one session at once, in any process: finished runs of a session do not overlap,
    # and a cut run (the killed worker's) is only followed by runs that started after the kill.
    runs = _ledger_runs(ledger)
    by_session: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_session[run["session_id"]].append(run)
    for session_runs in by_session.values():
        done = sorted((r for r in session_runs if r["ended"] is not None), key=lambda r: r["started"])
        for earlier, later in itertools.pairwise(done):
            assert earlier["ended"] <= later["started"], (earlier, later)
    # The kill cut the victim's turns only (it may have been running several sessions' at once), and each
    # of them completed exactly once afterwards, on the other worker, within a bound.
    cut = [r for r in runs if r["ended"] is None]
    assert victim_run["id"] in [r["id"] for r in cut]
    assert {r["pid"] for r in cut} == {victim_run["pid"]}
    survivor = next(w for w in cluster.workers if w is not victim)
    assert survivor.process is not None
    takeovers = []
    for cut_run in cut:
        again = [r for r in runs if r["message_id"] == cut_run["message_id"] and r["id"] != cut_run["id"]]
        assert len(again) == 1, again
        assert again[0]["pid"] == survivor.process.pid
        assert again[0]["ended"] is not None
        takeovers.append(again[0]["started"] - killed_at)
        assert finals[cut_run["message_id"]]["attempts"] == 2
        replies = cluster.count_rows("parley_transcript", message_id=cut_run["message_id"], role="assistant")
        assert replies == 1
    assert all(0 < t < STALLED_SECONDS * 4 for t in takeovers), takeovers
    per_process = defaultdict(int)
    for run in runs:
        per_process[run["pid"]] += 1
    print(
        f"\ncluster: messages={len(finals)} sessions={SESSIONS} completed="
        f"{sum(f['status'] == 'completed' for f in finals.values())} runs={len(runs)} cut_runs={len(cut)} "
        f"runs_per_worker={sorted(per_process.values())} overlapping_session_runs=0 "
        f"killed_turns={len(cut)} taken_over_after={max(takeovers):.2f}s (stalled after {STALLED_SECONDS:g}s)"
    )


def test_a_stopped_worker_finishes_its_turn_within_the_grace_period(
    make_deployment: Callable[..., Deployment], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite"
    cluster = _cluster(make_deployment, ledger, PARLEY_SHUTDOWN_GRACE_SECONDS="20")
    with httpx.Client(base_url=cluster.base_urls[0], timeout=30) as client:
        accepted = client.post(
            "/v1/chat", json={"user_id": "alice", "message": "[[sleep:1.5]] hi", "wait": 0}
        ).json()
        wait_until(lambda: any(r["ended"] is None for r in _ledger_runs(ledger)), what="the turn to run")
        [running] = _ledger_runs(ledger)
        worker = next(w for w in cluster.workers if w.process is not None and w.process.pid == running["pid"])
        assert worker.stop()
        # It finished its turn before it exited: completed at the first attempt, in that process.
        final = poll(client, accepted["message_id"])
    assert (final["status"], final["attempts"]) == ("completed", 1)
    assert [r["pid"] for r in _ledger_runs(ledger)] == [running["pid"]]


def _pg_ctl(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    if action != "stop":
        subprocess.run([*command, action], check=True, capture_output=True, timeout=120)
        return
    # "immediate": the server stops at once, as in a crash (no shutdown checkpoint to wait for), and
    # recovers from its WAL when it starts again. pg_ctl gives up waiting after 60 s and says so with exit
    # status 1, though the stop goes on: on this shared machine a backend caught in a slow fsync has taken
    # a minute to die after its SIGKILL. What the test needs is the server down: wait for that.
    subprocess.run([*command, "stop", "-m", "immediate"], check=False, capture_output=True, timeout=120)
    wait_until(
        lambda: (
            subprocess.run([*command, "status"], check=False, capture_output=True, timeout=30).returncode == 3
        ),  # pg_ctl status: 3 is "no server running"
        timeout=180,
        what="PostgreSQL to be down",
    )


def _ensure_postgresql_running() -> None:
    """Whatever happened in the test, leave PostgreSQL up for the rest of the run."""
    if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False, timeout=30).returncode != 0:
        subprocess.run(
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                sorted(os.listdir("/etc/postgresql"))[-1],
                "main",
                "start",
            ],
            check=False,
            capture_output=True,
            timeout=120,
        )
    wait_until(
        lambda: (
            subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False, timeout=30).returncode == 0
        ),
        timeout=120,
        what="PostgreSQL to accept connections again",
    )


def test_postgresql_restarted_under_load_loses_no_accepted_message(
    make_deployment: Callable[..., Deployment], backend: Backend, tmp_path: Path
) -> None:
    can_restart = (
        shutil.which("pg_ctlcluster") is not None and os.path.isdir("/etc/postgresql") and os.geteuid() == 0
    )
    require_service("a PostgreSQL this test may restart (pg_ctlcluster, as root)", can_restart)
    ledger = tmp_path / "ledger.sqlite"
    cluster = _cluster(make_deployment, ledger)
    url = cluster.base_urls[0]
    accepted: list[str] = []
    refused: list[int] = []
    not_ready_seen = threading.Event()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            i = 0
            while not stop.is_set() and i < 2000:
                i += 1
                try:
                    response = client.post(
                        "/v1/chat", json={"user_id": "alice", "message": f"m{i}", "wait": 0}
                    )
                except httpx.TransportError:
                    refused.append(0)
                    continue
                if response.status_code == 202:
                    accepted.append(response.json()["message_id"])
                else:
                    refused.append(response.status_code)
                time.sleep(0.01)

    sender = threading.Thread(target=load)
    sender.start()
    try:
        wait_until(lambda: len(accepted) >= 20, timeout=30, what="load before the restart")
        try:
            _pg_ctl("stop")
            # /readyz itself may take the pool's 5 s to give up on the database while it is down.
            with httpx.Client(base_url=url, timeout=15) as client:
                wait_until(lambda: client.get("/readyz").status_code == 503, timeout=30, what="not ready")
                not_ready_seen.set()
            _pg_ctl("start")
        finally:
            _ensure_postgresql_running()
        with httpx.Client(base_url=url, timeout=15) as client:
            wait_until(lambda: client.get("/readyz").status_code == 200, timeout=60, what="ready again")
        before = len(accepted)
        wait_until(
            lambda: len(accepted) >= before + 20, timeout=60, what="messages accepted after the restart"
        )
    finally:
        stop.set()
        sender.join(timeout=30)
    with httpx.Client(base_url=url, timeout=30) as client:
        finals = [poll(client, message_id, deadline=120) for message_id in accepted]
    statuses = defaultdict(int)
    for final in finals:
        statuses[final["status"]] += 1
    assert not_ready_seen.is_set()
    assert dict(statuses) == {"completed": len(accepted)}, dict(statuses)
    assert refused, "no request was refused: the database was never down under load"
    assert {code for code in refused} <= {0, 503}, refused
    print(
        f"\npostgres restart: accepted={len(accepted)} completed={statuses['completed']} refused={len(refused)} lost=0"
    )
