from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from parley.bots import shop
from parley.core.errors import (
    ActionPerformed,
    ConfigurationError,
    Forbidden,
    InterruptNotPending,
    NotFound,
    SessionBusy,
    SessionInterrupted,
    StorageUnavailable,
    TurnCancelled,
)
from parley.core.statuses import MessageKind, MessageStatus, SessionStatus
from parley.settings import Settings
from parley.storage.factory import database
from parley.storage.migrations.runner import latest_version
from parley.storage.sql_store import SqlStore
from parley.storage.sqlite_db import SqliteDatabase
from tests.backends import Backend


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[SqlStore]:
    s = SqlStore(database(Settings(**backend.settings_values())))
    await s.open()
    yield s
    await s.close()


async def _accept(
    store: SqlStore,
    session_id: str | None = None,
    *,
    user: str = "u",
    text: str = "hi",
    reject: bool = False,
):  # type: ignore[no-untyped-def]
    return await store.accept_message(
        user_id=user, session_id=session_id, content=text, kind=MessageKind.CHAT, reject_if_busy=reject
    )


async def test_accepting_without_a_session_creates_one(store: SqlStore) -> None:
    message = await _accept(store)
    assert message.status is MessageStatus.QUEUED
    assert message.attempts == 0
    session = await store.get_session(session_id=message.session_id, user_id="u")
    assert session.status is SessionStatus.BUSY
    assert session.message_count == 1


async def test_sessions_and_messages_are_scoped_by_owner(store: SqlStore) -> None:
    message = await _accept(store, user="alice")
    with pytest.raises(NotFound):
        await store.get_session(session_id=message.session_id, user_id="mallory")
    with pytest.raises(NotFound):
        await store.get_message(message_id=message.message_id, user_id="mallory")
    with pytest.raises(NotFound):
        await _accept(store, message.session_id, user="mallory")
    with pytest.raises(NotFound):
        await store.list_transcript(session_id=message.session_id, user_id="mallory", after=None, limit=10)
    with pytest.raises(NotFound):
        await store.delete_session(session_id=message.session_id, user_id="mallory")


async def test_reject_policy_refuses_while_a_message_is_pending(store: SqlStore) -> None:
    first = await _accept(store)
    with pytest.raises(SessionBusy) as caught:
        await _accept(store, first.session_id, reject=True)
    assert caught.value.extensions["message_id"] == first.message_id
    await store.finish(message_id=first.message_id, status=MessageStatus.COMPLETED, reply="ok")
    await _accept(store, first.session_id, reject=True)


@pytest.mark.postgres_only  # SQLite's store runs each call start to end: nothing to race there
async def test_rejecting_accepts_racing_on_separate_connections_let_exactly_one_through(
    store: SqlStore,
) -> None:
    first = await _accept(store)
    await store.finish(message_id=first.message_id, status=MessageStatus.COMPLETED, reply="ok")
    results = await asyncio.gather(
        *(_accept(store, first.session_id, reject=True) for _ in range(10)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, SessionBusy) for r in results) == 9


async def test_pending_messages_come_out_in_arrival_order(store: SqlStore) -> None:
    first = await _accept(store, text="1")
    second = await _accept(store, first.session_id, text="2")
    assert (await store.next_pending(session_id=first.session_id)).more is True
    assert (await store.next_pending(session_id=first.session_id)).message.message_id == first.message_id  # type: ignore[union-attr]
    await store.mark_running(message_id=first.message_id)
    # A running message (left by a crash) is still the next one: it is resumed before newer ones.
    assert (await store.next_pending(session_id=first.session_id)).message.message_id == first.message_id  # type: ignore[union-attr]
    await store.finish(message_id=first.message_id, status=MessageStatus.COMPLETED, reply="r1")
    assert (await store.next_pending(session_id=first.session_id)).message.message_id == second.message_id  # type: ignore[union-attr]
    assert await store.sessions_with_pending() == [first.session_id]
    head = await store.next_pending(session_id=first.session_id)
    assert head.more is False


async def test_mark_running_counts_attempts_and_skips_terminal(store: SqlStore) -> None:
    message = await _accept(store)
    running = await store.mark_running(message_id=message.message_id)
    assert running is not None
    assert running.status is MessageStatus.RUNNING
    assert running.attempts == 1
    again = await store.mark_running(message_id=message.message_id)
    assert again is not None
    assert again.attempts == 2
    assert again.started_at == running.started_at
    await store.finish(message_id=message.message_id, status=MessageStatus.FAILED, error={"type": "x"})
    assert await store.mark_running(message_id=message.message_id) is None


async def test_a_message_is_finished_exactly_once(store: SqlStore) -> None:
    message = await _accept(store)
    done = await store.finish(message_id=message.message_id, status=MessageStatus.COMPLETED, reply="one")
    assert done is not None
    assert done.status is MessageStatus.COMPLETED
    assert done.finished_at is not None
    assert (
        await store.finish(message_id=message.message_id, status=MessageStatus.COMPLETED, reply="two") is None
    )
    page = await store.list_transcript(session_id=message.session_id, user_id="u", after=None, limit=10)
    assert [(e.role, e.content) for e in page.items] == [("user", "hi"), ("assistant", "one")]


async def test_finish_refuses_a_non_terminal_status(store: SqlStore) -> None:
    message = await _accept(store)
    with pytest.raises(ValueError, match="terminal"):
        await store.finish(message_id=message.message_id, status=MessageStatus.RUNNING)


async def test_transcript_pairs_each_reply_with_its_message_and_paginates(store: SqlStore) -> None:
    first = await _accept(store, text="q0")
    ids = [first.message_id]
    for i in range(1, 5):
        ids.append((await _accept(store, first.session_id, text=f"q{i}")).message_id)
    # Replies written out of order still appear right after their own message.
    for i in reversed(range(5)):
        await store.finish(message_id=ids[i], status=MessageStatus.COMPLETED, reply=f"a{i}")
    seen = []
    after = None
    while True:
        page = await store.list_transcript(session_id=first.session_id, user_id="u", after=after, limit=3)
        seen += [e.content for e in page.items]
        if page.next_position is None:
            break
        after = page.next_position
    assert seen == [x for i in range(5) for x in (f"q{i}", f"a{i}")]


async def test_session_status_follows_its_last_message(store: SqlStore) -> None:
    message = await _accept(store)
    sid = message.session_id
    await store.finish(message_id=message.message_id, status=MessageStatus.FAILED, error={"type": "x"})
    assert (await store.get_session(session_id=sid, user_id="u")).status is SessionStatus.ERROR
    second = await _accept(store, sid)
    interrupt = [{"id": "i1", "value": {"q": "ok?"}}]
    await store.finish(message_id=second.message_id, status=MessageStatus.INTERRUPTED, interrupt=interrupt)
    session = await store.get_session(session_id=sid, user_id="u")
    assert session.status is SessionStatus.INTERRUPTED
    assert session.pending_interrupts == [{"id": "i1", "value": {"q": "ok?"}, "kind": "input"}]
    third = await store.accept_resume(
        session_id=sid, user_id="u", operator=False, interrupt_id="i1", value="yes"
    )
    assert (await store.get_session(session_id=sid, user_id="u")).status is SessionStatus.BUSY
    await store.finish(message_id=third.message_id, status=MessageStatus.COMPLETED, reply="ok")
    assert (await store.get_session(session_id=sid, user_id="u")).status is SessionStatus.IDLE


async def _interrupted(store: SqlStore, *interrupts: dict[str, object]) -> str:
    message = await _accept(store)
    await store.finish(
        message_id=message.message_id, status=MessageStatus.INTERRUPTED, interrupt=list(interrupts)
    )
    return message.session_id


async def test_a_resume_claims_its_interrupt_exactly_once(store: SqlStore) -> None:
    # Racing resumes over separate connections: tests/e2e/test_races.py.
    sid = await _interrupted(store, {"id": "i1", "value": {"kind": "confirm"}})
    await store.accept_resume(session_id=sid, user_id="u", operator=False, interrupt_id="i1", value=0)
    for n in range(1, 4):
        with pytest.raises(InterruptNotPending):
            await store.accept_resume(session_id=sid, user_id="u", operator=False, interrupt_id="i1", value=n)
    with pytest.raises(InterruptNotPending):
        await store.accept_resume(session_id=sid, user_id="u", operator=False, interrupt_id="nope", value=1)


async def test_a_resume_of_another_session_or_user_is_refused(store: SqlStore) -> None:
    sid = await _interrupted(store, {"id": "i1", "value": 1})
    other = await _interrupted(store, {"id": "i2", "value": 2})
    with pytest.raises(InterruptNotPending):
        await store.accept_resume(session_id=other, user_id="u", operator=False, interrupt_id="i1", value=1)
    with pytest.raises(NotFound):
        await store.accept_resume(
            session_id=sid, user_id="mallory", operator=False, interrupt_id="i1", value=1
        )
    assert (await store.get_session(session_id=sid, user_id="u")).status is SessionStatus.INTERRUPTED


async def test_only_an_operator_answers_a_review(store: SqlStore) -> None:
    sid = await _interrupted(store, {"id": "r1", "value": {"kind": "review", "draft": "…"}})
    with pytest.raises(Forbidden):
        await store.accept_resume(
            session_id=sid, user_id="u", operator=False, interrupt_id="r1", value="approve"
        )
    resumed = await store.accept_resume(
        session_id=sid, user_id="op-1", operator=True, interrupt_id="r1", value={"decision": "approve"}
    )
    assert resumed.user_id == "u"  # the message stays the session owner's
    assert resumed.actor == "op-1"


async def test_chat_to_an_interrupted_session_is_refused_or_taken_as_the_answer(store: SqlStore) -> None:
    sid = await _interrupted(store, {"id": "i1", "value": {"kind": "confirm"}})
    with pytest.raises(SessionInterrupted) as caught:
        await _accept(store, sid, text="yes")
    assert caught.value.extensions["interrupt_id"] == "i1"
    answer = await store.accept_message(
        user_id="u",
        session_id=sid,
        content="yes",
        kind=MessageKind.CHAT,
        reject_if_busy=False,
        answer_interrupts=True,
    )
    assert answer.kind is MessageKind.RESUME
    assert answer.resume == {"interrupt_id": "i1", "value": "yes"}
    page = await store.list_transcript(session_id=sid, user_id="u", after=None, limit=10)
    assert [e.content for e in page.items][-1] == "yes"


async def test_a_later_turn_supersedes_interrupts_it_did_not_raise_again(store: SqlStore) -> None:
    sid = await _interrupted(store, {"id": "a", "value": 1}, {"id": "b", "value": 2})
    resume_a = await store.accept_resume(
        session_id=sid, user_id="u", operator=False, interrupt_id="a", value=1
    )
    resume_b = await store.accept_resume(
        session_id=sid, user_id="u", operator=False, interrupt_id="b", value=2
    )
    # a's turn raises b again: b stays claimed by the queued resume.
    await store.finish(
        message_id=resume_a.message_id, status=MessageStatus.INTERRUPTED, interrupt=[{"id": "b", "value": 2}]
    )
    assert (await store.get_session(session_id=sid, user_id="u")).pending_interrupts == []
    await store.finish(message_id=resume_b.message_id, status=MessageStatus.COMPLETED, reply="done")
    queue = await store.list_interrupts(kind=None, created_before=None, session_id=sid, limit=10)
    assert queue == []


async def test_operator_queue_filters(store: SqlStore) -> None:
    review = await _interrupted(store, {"id": "r", "value": {"kind": "review"}})
    confirm = await _interrupted(store, {"id": "c", "value": {"kind": "confirm"}})
    everything = await store.list_interrupts(kind=None, created_before=None, session_id=None, limit=10)
    assert [i.session_id for i in everything] == [review, confirm]  # oldest first
    reviews = await store.list_interrupts(kind="review", created_before=None, session_id=None, limit=10)
    assert [i.interrupt_id for i in reviews] == ["r"]
    assert await store.list_interrupts(kind=None, created_before=None, session_id=confirm, limit=10) != []
    old = await store.list_interrupts(
        kind=None, created_before=everything[0].created_at, session_id=None, limit=10
    )
    assert [i.interrupt_id for i in old] == ["r"]


async def test_an_action_runs_once_per_key(store: SqlStore, backend: Backend) -> None:
    message = await _accept(store)
    args = {"item": "mug", "quantity": 2}
    ctx = {"key": "k1", "session_id": message.session_id, "user_id": "u", "now": "2026-01-01T00:00:00"}
    results = [
        await store.perform_once(
            key="k1",
            session_id=message.session_id,
            name="place_order",
            args=args,
            effect=shop.effect("place_order", args, ctx),
        )
        for _ in range(2)
    ]
    assert results[0] == results[1]
    assert results[0]["total"] == 18.0
    assert backend.count("parley_orders") == 1
    assert backend.count("parley_actions") == 1


async def test_refunds_of_an_order_never_add_up_to_more_than_its_total(
    store: SqlStore, backend: Backend
) -> None:
    message = await _accept(store)
    sid = message.session_id

    async def act(key: str, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        ctx = {"key": key, "session_id": sid, "user_id": "u", "now": "2026-01-01T00:00:00.000000+00:00"}
        return await store.perform_once(
            key=key, session_id=sid, name=name, args=args or {}, effect=shop.effect(name, args or {}, ctx)
        )

    order = await act("o", "place_order", {"item": "mug", "quantity": 2})
    whole = {"order_id": order["order_id"], "amount": 18.0}
    assert (await act("r1", "issue_refund", whole))["ok"] is True
    second = await act("r2", "issue_refund", whole)
    assert second["ok"] is False
    assert "refunded in full" in second["error"]
    assert backend.query("SELECT sum(amount) AS s FROM parley_refunds")[0]["s"] == 18.0

    # In parts: each part passes while something is left, and no more than what is left.
    other = await act("o2", "place_order", {"item": "mug", "quantity": 1})
    part = {"order_id": other["order_id"], "amount": 5.0}
    assert (await act("p1", "issue_refund", part))["ok"]
    too_much = await act("p2", "issue_refund", part)
    assert too_much["ok"] is False
    assert "at most 4.0" in too_much["error"]
    rest = await act("p3", "issue_refund", {"order_id": other["order_id"]})
    assert (rest["ok"], rest["amount"]) == (True, 4.0)  # with no amount: what is left


async def test_a_cancel_and_an_action_of_one_turn_exclude_each_other(
    store: SqlStore, backend: Backend
) -> None:
    args = {"item": "mug", "quantity": 2}

    async def act(message_id: str, name: str = "place_order") -> dict[str, object]:
        key = f"{message_id}:{name}"
        ctx = {"key": key, "session_id": "s", "user_id": "u", "now": "2026-01-01T00:00:00.000000+00:00"}
        return await store.perform_once(
            key=key,
            session_id="s",
            name=name,
            args=args,
            effect=shop.effect(name, args, ctx),
            message_id=message_id,
            acts=name in shop.EFFECTS,
        )

    cancelled_first = await _accept(store)
    await store.mark_running(message_id=cancelled_first.message_id)
    assert await store.mark_cancel_requested(message_id=cancelled_first.message_id) is not None
    with pytest.raises(TurnCancelled):
        await act(cancelled_first.message_id)
    assert backend.count("parley_orders") == 0

    acted_first = await _accept(store)
    await store.mark_running(message_id=acted_first.message_id)
    await act(acted_first.message_id)
    with pytest.raises(ActionPerformed):
        await store.mark_cancel_requested(message_id=acted_first.message_id)

    looked_up = await _accept(store)  # a lookup changes nothing: the turn stays cancellable
    await store.mark_running(message_id=looked_up.message_id)
    await act(looked_up.message_id, "lookup_order")
    assert await store.mark_cancel_requested(message_id=looked_up.message_id) is not None

    await store.finish(message_id=acted_first.message_id, status=MessageStatus.COMPLETED, reply="ok")
    assert await store.mark_cancel_requested(message_id=acted_first.message_id) is None  # ended


async def test_a_resume_that_did_not_happen_gives_its_interrupt_back(store: SqlStore) -> None:
    sid = await _interrupted(store, {"id": "i1", "value": {"kind": "confirm"}})

    async def claim() -> str:
        resume = await store.accept_resume(
            session_id=sid, user_id="u", operator=False, interrupt_id="i1", value=1
        )
        assert not await store.waits_on_interrupt(session_id=sid)
        return resume.message_id

    async def pending() -> list[str]:
        return [i["id"] for i in (await store.get_session(session_id=sid, user_id="u")).pending_interrupts]

    assert await store.cancel_if_queued(message_id=await claim()) is not None
    assert await pending() == ["i1"]
    assert await store.waits_on_interrupt(session_id=sid)
    # Undone without asking again (its rollback could not re-ask): the same interrupt is pending.
    undone = await claim()
    await store.mark_running(message_id=undone)
    await store.finish(message_id=undone, status=MessageStatus.FAILED, error={"type": "turn_failed"})
    assert await pending() == ["i1"]
    # Undone and asked again: the session waits on the new question, not the answered one.
    asked_again = await claim()
    await store.finish(
        message_id=asked_again,
        status=MessageStatus.CANCELLED,
        interrupt=[{"id": "i2", "value": {"kind": "confirm"}}],
    )
    assert await pending() == ["i2"]


async def test_delete_removes_everything_but_not_while_busy(store: SqlStore) -> None:
    message = await _accept(store)
    with pytest.raises(SessionBusy):
        await store.delete_session(session_id=message.session_id, user_id="u")
    await store.finish(message_id=message.message_id, status=MessageStatus.COMPLETED, reply="ok")
    await store.delete_session(session_id=message.session_id, user_id="u")
    with pytest.raises(NotFound):
        await store.get_session(session_id=message.session_id, user_id="u")
    with pytest.raises(NotFound):
        await store.get_message(message_id=message.message_id, user_id="u")


@pytest.mark.sqlite_only
async def test_reopening_applies_no_migration_twice(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    for _ in range(2):
        s = SqlStore(SqliteDatabase(path))
        await s.open()
        await s.check_ready()
        await s.close()
    with sqlite3.connect(path) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM parley_schema_migrations")]
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert versions == list(range(1, latest_version("sqlite") + 1))
    assert journal == "wal"


@pytest.mark.sqlite_only
async def test_a_closed_store_is_unavailable_not_crashing(tmp_path: Path) -> None:
    s = SqlStore(SqliteDatabase(tmp_path / "p.sqlite"))
    await s.open()
    await s.close()
    await s.close()
    with pytest.raises(StorageUnavailable):
        await s.check_ready()


@pytest.mark.sqlite_only
async def test_a_locked_database_is_reported_as_unavailable_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    s = SqlStore(SqliteDatabase(path, busy_timeout_ms=50))
    await s.open()
    # Something else (a backup tool, an operator's sqlite3 shell) holds the write lock.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageUnavailable):
            await _accept(s)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await s.sessions_with_pending() == []
    await _accept(s)
    await s.close()


@pytest.mark.sqlite_only
async def test_a_second_process_on_the_same_data_is_refused(tmp_path: Path) -> None:
    first = SqlStore(SqliteDatabase(tmp_path / "p.sqlite"))
    await first.open()
    second = SqlStore(SqliteDatabase(tmp_path / "p.sqlite"))
    with pytest.raises(ConfigurationError, match="another Parley process"):
        await second.open()
    await first.close()
    await second.open()  # released on close
    await second.close()


_FIXED_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"


async def test_every_stored_timestamp_has_the_fixed_format(store: SqlStore, backend: Backend) -> None:
    sid = await _interrupted(store, {"id": "i1", "value": {"kind": "confirm"}})
    resume = await store.accept_resume(
        session_id=sid, user_id="u", operator=False, interrupt_id="i1", value="yes"
    )
    await store.finish(message_id=resume.message_id, status=MessageStatus.COMPLETED, reply="done")
    values = [
        value
        for table, columns in {
            "parley_sessions": "created_at, updated_at",
            "parley_messages": "created_at, updated_at, started_at, finished_at",
            "parley_transcript": "created_at",
            "parley_interrupts": "created_at, updated_at",
            "parley_schema_migrations": "applied_at",
        }.items()
        for row in backend.query(f"SELECT {columns} FROM {table}")
        for value in row.values()
        if value is not None
    ]
    assert len(values) > 10
    assert all(re.match(_FIXED_TIMESTAMP, v) for v in values), values


async def test_the_operator_queue_age_bound_is_exact_at_a_whole_second(
    store: SqlStore, backend: Backend
) -> None:
    sid = await _interrupted(store, {"id": "i1", "value": {"kind": "confirm"}})
    backend.execute("UPDATE parley_interrupts SET created_at = '2026-01-01T00:00:13.000000Z'")
    boundary = datetime(2026, 1, 1, 0, 0, 13, tzinfo=UTC)
    found = await store.list_interrupts(kind=None, created_before=boundary, session_id=sid, limit=10)
    assert [i.interrupt_id for i in found] == ["i1"]
    assert found[0].created_at == boundary


@pytest.mark.sqlite_only
async def test_a_sessions_pending_messages_are_found_without_walking_its_history(
    store: SqlStore, backend: Backend
) -> None:
    """Every turn looks up its session's pending messages: through an index of only those, not by reading
    every message the session ever had (a turn got slower as the conversation grew)."""
    from parley.storage import rows

    for statement in (
        f"SELECT {rows.MESSAGE_COLUMNS} FROM parley_messages "
        f"WHERE session_id = ? AND status IN {rows.PENDING_SQL} ORDER BY seq LIMIT 2",
        f"SELECT message_id FROM parley_messages WHERE session_id = ? AND status IN {rows.PENDING_SQL} "
        "ORDER BY seq LIMIT 1",
    ):
        plan = backend.query("EXPLAIN QUERY PLAN " + statement, ("s",))
        assert "parley_messages_session_pending" in plan[0]["detail"], plan
