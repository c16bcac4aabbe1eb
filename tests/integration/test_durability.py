"""Retries, deadlines, cancellation, idempotent POSTs and storage errors, on the real app and SQLite."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from contextlib import AsyncExitStack
from typing import Any

import pytest

from parley.core.statuses import MessageKind
from parley.storage.factory import database, open_storage
from parley.storage.sql_store import SqlStore
from tests.conftest import AppHarness
from tests.crashes import crash_during_turn, restarted
from tests.integration.test_chat_api import poll_until_terminal
from tests.waiting import wait_until_async


async def _is_running(h: AppHarness, message_id: str) -> bool:
    response = await h.client.get(f"/v1/messages/{message_id}", headers=ALICE)
    return bool(response.json()["status"] == "running")


FAST_RETRIES = {"retry_base_seconds": 0.01, "retry_max_seconds": 0.05}
COUNTING = "tests.graphs.counting:graph"
ALICE = {"X-User-Id": "alice"}


async def test_a_model_that_fails_twice_then_succeeds_completes_on_the_third_attempt(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(**FAST_RETRIES))
    body = (await h.chat(message="[[flaky:2]] hello")).json()
    assert body["status"] == "completed"
    assert body["attempts"] == 3
    assert body["reply"] == "Echo: [[flaky:2]] hello".replace("[[flaky:2]] ", "")


@pytest.mark.parametrize("directive", ["[[flaky:9]]", "[[fail:rate_limit]]", "[[fail:unavailable]]"])
async def test_transient_failures_past_the_limit_fail_the_message(
    harness_factory: Any, make_settings: Any, directive: str
) -> None:
    h: AppHarness = await harness_factory(make_settings(max_attempts=3, **FAST_RETRIES))
    body = (await h.chat(message=f"{directive} hello")).json()
    assert body["status"] == "failed"
    assert body["attempts"] == 3
    assert body["error"]["type"] == "retries_exhausted"
    # No exception class in the answer (TimeoutError, ScriptedHTTPError): those go to the log.
    assert not re.search(r"[A-Z]\w*(Error|Exception)", body["error"]["detail"]), body["error"]
    again = (await h.chat(message="fine now", session_id=body["session_id"])).json()
    assert again["status"] == "completed"


async def test_permanent_failures_are_not_retried(harness_factory: Any, make_settings: Any) -> None:
    h: AppHarness = await harness_factory(make_settings(**FAST_RETRIES))
    body = (await h.chat(message="[[fail]]")).json()
    assert body["status"] == "failed"
    assert body["attempts"] == 1
    assert body["error"]["type"] == "turn_failed"


async def test_a_turn_past_its_deadline_fails_and_the_session_moves_on(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graph=COUNTING, turn_timeout_seconds=0.3))
    first = (await h.chat(message="one")).json()
    started = time.monotonic()
    late = (await h.chat(message="two [[sleep:5]]", session_id=first["session_id"])).json()
    assert time.monotonic() - started < 3
    assert late["status"] == "failed"
    assert late["error"]["type"] == "timeout"
    after = (await h.chat(message="three", session_id=first["session_id"])).json()
    assert after["status"] == "completed"
    # The timed-out turn left no trace in the graph state: the next turn saw "one" and "three" only.
    assert json.loads(after["reply"])["seen"] == 2


async def test_cancelling_a_queued_message_means_it_never_runs(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graph=COUNTING))
    first = (await h.chat(message="slow [[sleep:0.5]]", wait=0)).json()
    second = (await h.chat(message="never", session_id=first["session_id"], wait=0)).json()
    response = await h.client.post(f"/v1/messages/{second['message_id']}/cancel", headers=ALICE)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["error"]["type"] == "cancelled"
    assert (await poll_until_terminal(h.client, first["message_id"]))["status"] == "completed"
    third = (await h.chat(message="third", session_id=first["session_id"])).json()
    assert json.loads(third["reply"])["seen"] == 2  # "slow" and "third": "never" never ran
    transcript = (await h.client.get(f"/v1/sessions/{first['session_id']}/messages", headers=ALICE)).json()
    assert [i["content"] for i in transcript["items"] if i["message_id"] == second["message_id"]] == ["never"]


async def test_cancelling_a_running_turn_rolls_the_state_back(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graph=COUNTING))
    first = (await h.chat(message="one")).json()
    sid = first["session_id"]
    running = (await h.chat(message="two [[sleep:10]]", session_id=sid, wait=0)).json()
    await wait_until_async(lambda: _is_running(h, running["message_id"]), what="the turn to run")
    started = time.monotonic()
    response = await h.client.post(f"/v1/messages/{running['message_id']}/cancel", headers=ALICE)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert time.monotonic() - started < 2
    session = (await h.client.get(f"/v1/sessions/{sid}", headers=ALICE)).json()
    assert session["status"] == "idle"
    after = (await h.chat(message="three", session_id=sid)).json()
    assert json.loads(after["reply"])["seen"] == 2  # "one" and "three"
    again = await h.client.post(f"/v1/messages/{running['message_id']}/cancel", headers=ALICE)
    assert again.status_code == 409
    assert again.json()["status"] == 409


async def test_cancel_is_scoped_to_the_owner(harness: AppHarness) -> None:
    body = (await harness.chat(message="[[sleep:0.3]] hi", wait=0)).json()
    response = await harness.client.post(
        f"/v1/messages/{body['message_id']}/cancel", headers={"X-User-Id": "mallory"}
    )
    assert response.status_code == 404
    assert (await poll_until_terminal(harness.client, body["message_id"]))["status"] == "completed"
    missing = await harness.client.post("/v1/messages/nope/cancel", headers=ALICE)
    assert missing.status_code == 404


async def test_idempotency_key_returns_the_same_message(harness: AppHarness) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = await harness.client.post("/v1/chat", json={"user_id": "alice", "message": "hi"}, headers=headers)
    second = await harness.client.post(
        "/v1/chat", json={"user_id": "alice", "message": "hi"}, headers=headers
    )
    assert first.status_code == second.status_code == 200
    assert first.json()["message_id"] == second.json()["message_id"]
    assert first.json()["session_id"] == second.json()["session_id"]
    transcript = (
        await harness.client.get(f"/v1/sessions/{first.json()['session_id']}/messages", headers=ALICE)
    ).json()
    assert len(transcript["items"]) == 2
    # Another user's key space is their own.
    other = await harness.client.post("/v1/chat", json={"user_id": "bob", "message": "hi"}, headers=headers)
    assert other.json()["message_id"] != first.json()["message_id"]


async def test_idempotency_key_reused_for_another_request_is_422(harness: AppHarness) -> None:
    headers = {"Idempotency-Key": "k-2"}
    await harness.client.post("/v1/chat", json={"user_id": "alice", "message": "hi"}, headers=headers)
    response = await harness.client.post(
        "/v1/chat", json={"user_id": "alice", "message": "bye"}, headers=headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "header.Idempotency-Key"


async def test_a_message_whose_attempts_are_spent_fails_without_running(
    make_settings: Any, harness_factory: Any
) -> None:
    settings = make_settings(max_attempts=2)
    store = SqlStore(database(settings))
    await store.open()
    message = await store.accept_message(
        user_id="alice", session_id=None, content="poison", kind=MessageKind.CHAT, reject_if_busy=False
    )
    for _ in range(2):  # two starts that each crashed the process
        await store.mark_running(message_id=message.message_id)
    await store.close()

    h: AppHarness = await harness_factory(settings)
    final = await poll_until_terminal(h.client, message.message_id)
    assert final["status"] == "failed"
    assert final["error"]["type"] == "attempts_exhausted"
    assert final["attempts"] == 3


@pytest.mark.sqlite_only
async def test_a_storage_outage_during_a_turn_leaves_it_retryable(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graph=COUNTING))
    body = (await h.chat(message="hold on [[sleep:0.3]]", wait=0)).json()
    await wait_until_async(lambda: _is_running(h, body["message_id"]), what="the turn to run")
    # An outside writer holds the database while the turn ends: recording the outcome fails.
    blocker = sqlite3.connect(h.services.settings.sqlite_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    await asyncio.sleep(0.4)
    await asyncio.get_running_loop().run_in_executor(None, time.sleep, 2.5)
    blocker.execute("ROLLBACK")
    blocker.close()
    final = await poll_until_terminal(h.client, body["message_id"])
    assert final["status"] == "completed"
    assert final["attempts"] == 2
    # The retry found the graph already finished in the checkpoint and only recorded the outcome.
    assert json.loads(final["reply"])["runs"] == 1


async def test_a_crash_between_the_first_checkpoint_and_its_input_does_not_skip_the_turn(
    make_settings: Any, harness_factory: Any
) -> None:
    """The chaos test found it: a checkpoint tagged with the message, written just before a SIGKILL,
    without the message's input in it. The turn must run, not be taken as finished."""
    from langgraph.checkpoint.base import empty_checkpoint

    settings = make_settings()
    async with AsyncExitStack() as stack:
        storage = await open_storage(settings, stack)
        message = await storage.store.accept_message(
            user_id="alice",
            session_id=None,
            content="first words",
            kind=MessageKind.CHAT,
            reject_if_busy=False,
        )
        await storage.store.mark_running(message_id=message.message_id)  # the start the crash interrupted
        config: Any = {"configurable": {"thread_id": message.session_id, "checkpoint_ns": ""}}
        await storage.checkpointer.aput(
            config,
            empty_checkpoint(),
            {"source": "input", "step": -1, "parley_message_id": message.message_id},
            {},
        )

    h: AppHarness = await harness_factory(settings)
    final = await poll_until_terminal(h.client, message.message_id)
    assert final["status"] == "completed"
    assert final["reply"] == "Echo: first words"


@pytest.mark.inprocess_only  # reaches into the in-process runner or its checkpointer
async def test_a_crash_after_a_steps_writes_but_before_its_checkpoint_continues_the_turn(
    make_settings: Any,
) -> None:
    """The chaos test found it: LangGraph saves a step's writes, then the checkpoint after it. Killed in
    between, the latest checkpoint is tagged with the message, holds its input, and has nothing left to
    run — which is not the same as finished. The turn must go on and produce its reply."""
    settings = make_settings()
    accepted = await crash_during_turn(
        settings,
        message="survive",
        at=lambda _checkpoint, metadata: metadata.get("source") == "loop" and metadata.get("step") == 0,
        after_saving=False,
    )
    async with restarted(settings) as client:
        final = await poll_until_terminal(client, accepted["message_id"])
    assert final["status"] == "completed"
    assert final["reply"] == "Echo: survive"
    assert final["attempts"] == 2


@pytest.mark.inprocess_only  # reaches into the in-process runner or its checkpointer
async def test_an_unexpected_error_in_the_runner_is_retried_not_fatal(harness: AppHarness) -> None:
    runner: Any = harness.services.runner
    executor = runner._executor
    original = executor.run
    failures = []

    async def flaky_run(message: Any) -> Any:
        if not failures:
            failures.append(message.message_id)
            raise RuntimeError("a bug")
        return await original(message)

    executor.run = flaky_run
    body = (await harness.chat(message="still answered", wait=10)).json()
    assert failures == [body["message_id"]]
    assert body["status"] == "completed"
    assert body["reply"] == "Echo: still answered"
