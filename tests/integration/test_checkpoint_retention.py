"""Checkpoint retention and session deletion, counted in the stores' own tables, on every backend."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import psycopg
from psycopg.rows import dict_row

from parley.storage.checkpoint_pruning import TABLES, open_pruner
from tests.backends import Backend
from tests.conftest import AppHarness
from tests.integration.test_chat_api import poll_until_terminal
from tests.waiting import wait_until_async

ALICE = {"X-User-Id": "alice"}
COUNTING = "tests.graphs.counting:graph"
ORDER_MUGS = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'
# The demo shop's orders are the business's records of what a user bought, kept when a conversation
# goes (as a real shop's would be); everything else keyed by a session is Parley's or the saver's.
NOT_THE_SESSIONS = {"parley_orders", "parley_refunds"}


def _saver_tables(backend: Backend) -> dict[str, set[str]]:
    """Every table of the checkpointer's storage (not Parley's, not the job queue's) and its columns."""
    if backend.database_url is None:
        conn = sqlite3.connect(backend.data_dir / "parley-checkpoints.sqlite")
        try:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {n: {str(c[1]) for c in conn.execute(f"PRAGMA table_info({n})")} for n in names}
        finally:
            conn.close()
    found: dict[str, set[str]] = {}
    for row in backend.query(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
    ):
        name = row["table_name"]
        if not name.startswith(("parley_", "procrastinate_")):
            found.setdefault(name, set()).add(row["column_name"])
    return found


def _session_rows(backend: Backend, session_id: str, message_ids: list[str]) -> dict[str, int]:
    """Rows of the session in every table of both stores that names a session (or one of its messages)."""
    counts: dict[str, int] = {}
    if backend.database_url is None:
        for file in ("parley.sqlite", "parley-checkpoints.sqlite"):
            conn = sqlite3.connect(backend.data_dir / file)
            try:
                names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                for name in names:
                    columns = {str(c[1]) for c in conn.execute(f"PRAGMA table_info({name})")}
                    counts.update(_count(name, columns, session_id, message_ids, conn.execute))
            finally:
                conn.close()
        return counts
    with psycopg.connect(backend.database_url, autocommit=True, row_factory=dict_row) as conn:
        columns_of: dict[str, set[str]] = {}
        for row in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        ):
            columns_of.setdefault(row["table_name"], set()).add(row["column_name"])

        def run(sql: str, params: tuple[Any, ...]) -> Any:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

        for name, columns in columns_of.items():
            counts.update(_count(name, columns, session_id, message_ids, run))
        if "procrastinate_jobs" in columns_of:
            counts["procrastinate_jobs"] = conn.execute(
                "SELECT count(*) AS n FROM procrastinate_jobs WHERE args ->> 'session_id' = %s", (session_id,)
            ).fetchone()["n"]
    return counts


def _count(
    table: str, columns: set[str], session_id: str, message_ids: list[str], execute: Any
) -> dict[str, int]:
    if table in NOT_THE_SESSIONS:
        return {}
    for column in ("session_id", "thread_id"):
        if column in columns:
            rows = list(execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (session_id,)))
            return {table: _first(rows[0])}
    if "message_id" in columns and message_ids:
        marks = ", ".join("?" for _ in message_ids)
        rows = list(
            execute(f"SELECT count(*) FROM {table} WHERE message_id IN ({marks})", tuple(message_ids))
        )
        return {table: _first(rows[0])}
    return {}


def _first(row: Any) -> int:
    return int(next(iter(row.values())) if isinstance(row, dict) else row[0])


async def _history(h: AppHarness, sid: str) -> list[dict[str, Any]]:
    response = await h.client.get(f"/v1/sessions/{sid}/history", headers=ALICE, params={"limit": 200})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_the_savers_tables_are_the_ones_pruning_knows(harness: AppHarness) -> None:
    await harness.chat(message="hi")  # the saver made its tables
    dialect = "sqlite" if harness.backend.database_url is None else "postgres"
    found = _saver_tables(harness.backend)
    # Every table of the saver's holds a session's rows and is pruned, or only its own migrations.
    assert set(found) - {"checkpoint_migrations"} == set(TABLES[dialect])
    for table, columns in TABLES[dialect].items():
        assert columns <= found[table], table
    await open_pruner(harness.services.checkpointer, harness.services.store, backend=dialect)  # type: ignore[arg-type]


async def test_retention_keeps_the_latest_checkpoints_and_time_travel_reaches_them(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(
        make_settings(graph=COUNTING, checkpoint_keep=4, checkpoint_prune_interval_seconds=0.05)
    )
    first = (await h.chat(message="m0")).json()
    sid = first["session_id"]
    ids = [first["message_id"]]
    for i in range(1, 5):
        ids.append((await h.chat(message=f"m{i}", session_id=sid)).json()["message_id"])

    async def pruned() -> bool:
        return len(await _history(h, sid)) == 4

    await wait_until_async(pruned, what="the session's checkpoints pruned to 4")
    history = await _history(h, sid)
    assert [c["message_id"] for c in history] == [ids[4]] * 3 + [ids[3]]
    assert h.backend.count("parley_messages") == 5  # only checkpoints go; the transcript stays
    if h.backend.database_url is not None:
        # PostgreSQL's blobs went with the checkpoints that alone used them: none is left unreferenced.
        unreferenced = h.backend.query(
            "SELECT count(*) AS n FROM checkpoint_blobs b WHERE b.thread_id = ? AND NOT EXISTS ("
            "SELECT 1 FROM checkpoints c WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns "
            "AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)",
            (sid,),
        )
        assert unreferenced[0]["n"] == 0
        assert h.backend.count("checkpoint_blobs", "thread_id = ?", (sid,)) > 0

    # The oldest kept checkpoint (the end of m3) is within reach; the ones before it are not.
    gone = await h.client.post(
        f"/v1/sessions/{sid}/rewind",
        json={"user_id": "alice", "checkpoint_id": history[-1]["parent_checkpoint_id"]},
    )
    assert gone.status_code == 404
    rewound = await h.client.post(
        f"/v1/sessions/{sid}/rewind", json={"user_id": "alice", "checkpoint_id": history[-1]["checkpoint_id"]}
    )
    assert rewound.json()["status"] == "completed"
    reply = (await h.chat(message="again", session_id=sid)).json()["reply"]
    assert json.loads(reply)["seen"] == 5  # m0 to m3 and this one: the state before m4


async def test_a_pending_interrupt_keeps_what_it_needs(harness_factory: Any, make_settings: Any) -> None:
    h: AppHarness = await harness_factory(
        make_settings(checkpoint_keep=1, checkpoint_prune_interval_seconds=0.05)
    )
    sid = (await h.chat(message="hello")).json()["session_id"]
    asked = (await h.chat(message=ORDER_MUGS, session_id=sid)).json()
    assert asked["status"] == "interrupted"

    async def pruned() -> bool:
        return len(await _history(h, sid)) == 1

    await wait_until_async(pruned, what="the session's checkpoints pruned to its head")
    done = await h.client.post(
        f"/v1/sessions/{sid}/resume",
        json={
            "user_id": "alice",
            "interrupt_id": asked["interrupt"][0]["id"],
            "value": {"decision": "approve"},
        },
    )
    assert done.json()["status"] == "completed", done.json()
    assert '"ok": true' in done.json()["reply"]


async def test_a_session_with_a_pending_message_is_not_pruned(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graph=COUNTING, checkpoint_keep=0))
    first = (await h.chat(message="m0")).json()
    sid = first["session_id"]
    await h.chat(message="m1", session_id=sid)
    dialect = "sqlite" if h.backend.database_url is None else "postgres"
    pruner = await open_pruner(h.services.checkpointer, h.services.store, backend=dialect)  # type: ignore[arg-type]
    busy = (await h.chat(message="[[sleep:0.5]] m2", session_id=sid, wait=0)).json()
    before = len(await _history(h, sid))
    assert await pruner.prune(session_id=sid, keep=1) == 0
    assert len(await _history(h, sid)) >= before
    await poll_until_terminal(h.client, busy["message_id"])
    assert await pruner.prune(session_id=sid, keep=1) > 0
    assert len(await _history(h, sid)) == 1


async def test_deleting_a_session_leaves_no_row_of_it_in_either_store(harness: AppHarness) -> None:
    h = harness
    first = (await h.chat(message="hello")).json()
    sid = first["session_id"]
    asked = (await h.chat(message=ORDER_MUGS, session_id=sid)).json()
    done = await h.client.post(
        f"/v1/sessions/{sid}/resume",
        json={
            "user_id": "alice",
            "interrupt_id": asked["interrupt"][0]["id"],
            "value": {"decision": "approve"},
        },
    )
    assert done.json()["status"] == "completed"
    paused = (await h.chat(message=ORDER_MUGS, session_id=sid)).json()  # a pending interrupt too
    assert paused["status"] == "interrupted"
    history = await _history(h, sid)
    rewind = await h.client.post(
        f"/v1/sessions/{sid}/rewind", json={"user_id": "alice", "checkpoint_id": history[-1]["checkpoint_id"]}
    )
    assert rewind.status_code == 200
    other = (await h.chat(message="another conversation")).json()["session_id"]
    await h.services.journal.drain()
    ids = [m["message_id"] for m in (first, asked, done.json(), paused, rewind.json())]
    before = _session_rows(h.backend, sid, ids)
    others = _session_rows(h.backend, other, [])
    expected = {"parley_sessions", "parley_messages", "parley_transcript", "parley_interrupts"}
    expected |= {"parley_actions", "parley_message_events"}
    expected |= {"checkpoints", "writes"} if h.backend.database_url is None else set(TABLES["postgres"])
    assert {table for table, n in before.items() if n} >= expected, before

    assert (await h.client.delete(f"/v1/sessions/{sid}", headers=ALICE)).status_code == 204

    async def gone() -> bool:  # the queue's finished job is deleted by its worker, just after the turn
        return not any(_session_rows(h.backend, sid, ids).values())

    await wait_until_async(gone, what="every row of the session gone")
    after_other = _session_rows(h.backend, other, [])
    assert {t: n for t, n in after_other.items() if t != "procrastinate_jobs"} == {
        t: n for t, n in others.items() if t != "procrastinate_jobs"
    }
