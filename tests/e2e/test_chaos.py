"""Kill the server with SIGKILL at random moments while clients talk to it: nothing accepted is lost, a
step LangGraph saved never runs again, every transcript stays in order.

What a crash may repeat, and what it may not. Parley runs graphs with ``durability="sync"``: LangGraph saves
each step's writes as the step finishes, and a turn started again continues from there. So a step can run
twice only when a crash cut it before its writes were saved — in the middle of its code, or in the short
window between its code's end and the save. A step whose writes were saved must never run again (that would
be a turn restarted, not resumed). The chaos graph (tests/graphs/chaos.py) logs every run of every step and
every execution of its side effect, and at each kill — the process is dead, so the files hold still — the
test reads which turns were running, which steps were cut, and which steps the checkpoints had saved. Then
every repeated run must be explained by a kill that cut the run before its step was saved.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from langgraph.checkpoint.sqlite import SqliteSaver

from tests.e2e.server import ServerProcess
from tests.graphs.chaos import STEPS, open_log

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


@dataclass
class Kill:
    """What the files said right after one SIGKILL."""

    last_run_id: int  # the last step run the killed process started
    interrupted: set[str] = field(default_factory=set)  # turns running in the killed process
    cut_steps: set[tuple[str, str]] = field(default_factory=set)  # (message id, step) started, not ended
    saved_steps: set[tuple[str, str]] = field(default_factory=set)  # of interrupted turns, in checkpoints


def _saved_steps(checkpoints: Path, session_id: str) -> set[str]:
    """``"<message id>:<step>"`` of every step LangGraph saved for the session: in its latest checkpoint,
    or in that checkpoint's pending writes (a finished step of a superstep not yet checkpointed)."""
    with closing(sqlite3.connect(checkpoints, check_same_thread=False)) as conn:
        latest = SqliteSaver(conn).get_tuple({"configurable": {"thread_id": session_id}})
    if latest is None:
        return set()
    saved = set(latest.checkpoint["channel_values"].get("steps", []))
    for _task, channel, value in latest.pending_writes or ():
        if channel == "steps":
            saved.update(value)
    return saved


def _read_kill(data: Path, log_db: Path, after_run_id: int) -> Kill:
    with closing(open_log(str(log_db))) as log:
        last_run_id = log.execute("SELECT coalesce(max(id), 0) FROM step_runs").fetchone()[0]
        runs_here = log.execute(
            "SELECT r.id, r.message_id, r.step, e.run_id IS NOT NULL FROM step_runs r "
            "LEFT JOIN step_ends e ON e.run_id = r.id WHERE r.id > ?",
            (after_run_id,),
        ).fetchall()
    with closing(sqlite3.connect(data / "parley.sqlite")) as conn:
        running = dict(
            conn.execute(
                "SELECT message_id, session_id FROM parley_messages WHERE status = 'running'"
            ).fetchall()
        )
    kill = Kill(last_run_id=last_run_id)
    # A message left 'running' by an earlier kill and not picked up again yet was not interrupted by this
    # one: a turn counts when the killed process had run a step of it.
    kill.interrupted = {message_id for _, message_id, _, _ in runs_here if message_id in running}
    kill.cut_steps = {(message_id, step) for _, message_id, step, ended in runs_here if not ended}
    for message_id in kill.interrupted:
        for saved in _saved_steps(data / "parley-checkpoints.sqlite", running[message_id]):
            saved_message, _, step = saved.rpartition(":")
            if saved_message == message_id:
                kill.saved_steps.add((message_id, step))
    return kill


def test_sigkill_at_random_moments_loses_nothing_and_never_reruns_a_saved_step(tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    log_db = tmp_path / "chaos-log.sqlite"
    open_log(str(log_db)).close()
    data = tmp_path / "data"
    server = ServerProcess(
        data,
        env={
            "PARLEY_GRAPH": "tests.graphs.chaos:graph",
            "CHAOS_EFFECTS_DB": str(log_db),
            # A message killed mid-turn again and again must still get through this test's kills.
            "PARLEY_MAX_ATTEMPTS": str(KILLS + 2),
            "PARLEY_LOG_LEVEL": "warning",
        },
    )
    server.start()
    client = Client(server, rng)
    sender = threading.Thread(target=client.run, daemon=True)
    kills: list[Kill] = []
    try:
        sender.start()
        while len(kills) < KILLS:
            time.sleep(rng.uniform(0.2, 0.9))
            server.sigkill()
            kills.append(_read_kill(data, log_db, kills[-1].last_run_id if kills else 0))
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

    with closing(open_log(str(log_db))) as log:
        step_runs = log.execute(
            "SELECT r.id, r.message_id, r.step, e.run_id IS NOT NULL FROM step_runs r "
            "LEFT JOIN step_ends e ON e.run_id = r.id ORDER BY r.id"
        ).fetchall()
        executions = log.execute(
            "SELECT run_id, message_id, applied FROM effect_executions ORDER BY id"
        ).fetchall()
        effects = dict(log.execute("SELECT message_id, count(*) FROM effects GROUP BY message_id").fetchall())

    # The delivery side: every message accepted, completed once, in order, with its reply.
    message_ids = {mid for messages in client.sent.values() for _, mid in messages}
    accepted = len(message_ids)
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

    # The execution side: every run of a step that was not its last must have been cut by a kill before
    # LangGraph saved the step. ``kill_of`` finds the kill that ended the process a run happened in.
    def kill_of(run_id: int) -> Kill | None:
        return next((k for k in kills if run_id <= k.last_run_id), None)

    runs: dict[tuple[str, str], list[tuple[int, bool]]] = defaultdict(list)
    for run_id, message_id, step, ended in step_runs:
        runs[message_id, step].append((run_id, bool(ended)))
    restarted: list[tuple[str, str]] = []  # saved steps that ran again: a turn restarted, not resumed
    unexplained: list[tuple[str, str]] = []  # repeats with no kill that cut the earlier run
    unfinished: list[tuple[str, str]] = []  # steps whose last run did not finish
    cut_mid_step = 0
    cut_after_step = 0  # the step's code had finished; the kill came before LangGraph saved it
    for (message_id, step), step_history in runs.items():
        *earlier, (_, last_ended) = step_history
        if not last_ended:
            unfinished.append((message_id, step))
        for run_id, ended in earlier:
            kill = kill_of(run_id)
            if kill is None or message_id not in kill.interrupted:
                unexplained.append((message_id, step))
            elif (message_id, step) in kill.saved_steps:
                restarted.append((message_id, step))
            elif ended:
                cut_after_step += 1
            else:
                cut_mid_step += 1

    # The effect: applied once per message (its key), executed once per message by the run of ``act`` that
    # completed, and executed again only in runs of ``act`` that a kill cut after the effect's commit and
    # before LangGraph saved the step (runs that ``runs`` above holds to that).
    cut_act_runs = {
        run_id for (_, step), history in runs.items() if step == "act" for run_id, _ in history[:-1]
    }
    applied = sum(applied for _, _, applied in executions)
    found_applied = len(executions) - applied  # re-executions that found the effect made: the key held
    repeated_executions = sum(1 for run_id, _, _ in executions if run_id in cut_act_runs)
    executions_of_last_runs = Counter(m for run_id, m, _ in executions if run_id not in cut_act_runs)

    kills_mid_turn = sum(1 for k in kills if k.interrupted)
    kills_mid_step = sum(1 for k in kills if k.cut_steps)
    # Turns a kill interrupted after at least one of their steps was saved: the resumes this test checks.
    resumed_turns = sum(len({m for m, _ in k.saved_steps}) for k in kills)
    interrupted_turns = sum(len(k.interrupted) for k in kills)
    print(
        f"\nchaos seed={seed}: kills={KILLS} mid_turn={kills_mid_turn} mid_step={kills_mid_step} "
        f"interrupted_turns={interrupted_turns} resumed_after_a_saved_step={resumed_turns} "
        f"accepted={accepted} completed={completed} lost={lost} duplicated_lines={duplicated_lines} "
        f"out_of_order_sessions={out_of_order} broken_transcripts={broken_transcripts} "
        f"step_runs={len(step_runs)} reruns_cut_mid_step={cut_mid_step} "
        f"reruns_cut_before_save={cut_after_step} restarted_saved_steps={len(restarted)} "
        f"unexplained_reruns={len(unexplained)} effects={sum(effects.values())} "
        f"effect_executions={len(executions)} (applied={applied}, found_applied={found_applied}) "
        f"client_connection_errors={client.connection_errors}"
    )
    for n, k in enumerate(kills, 1):
        print(
            f"  kill {n}: turns running={len(k.interrupted)} steps cut={len(k.cut_steps)} "
            f"turns with a saved step={len({m for m, _ in k.saved_steps})}"
        )
    not_completed = {
        k: (v["status"], v["attempts"], v["error"]) for k, v in statuses.items() if v["status"] != "completed"
    }
    if not_completed:
        print("not completed:", not_completed)

    assert accepted == SESSIONS * MESSAGES_PER_SESSION
    assert lost == 0
    assert completed == accepted, not_completed
    assert broken_transcripts == 0
    assert duplicated_lines == 0
    assert out_of_order == 0

    # The kills landed where they test something: in the middle of turns, and after saved steps.
    assert kills_mid_turn >= KILLS / 2, [sorted(k.interrupted) for k in kills]
    assert resumed_turns >= 1
    # Resumed, never restarted: no saved step ran again, and every repeat is a run a kill cut short.
    assert restarted == [], restarted
    assert unexplained == [], unexplained
    assert unfinished == [], unfinished
    assert set(runs) == {(m, s) for m in message_ids for s in STEPS}

    # One effect per message, applied by one execution; each message's completed run of ``act`` executed it
    # once; every other execution was in a run cut short by a kill before its step was saved.
    assert set(effects) == message_ids
    assert applied == accepted
    assert executions_of_last_runs == dict.fromkeys(message_ids, 1)
    assert len(executions) == accepted + repeated_executions
