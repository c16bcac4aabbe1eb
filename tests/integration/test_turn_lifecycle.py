"""A turn's lifecycle at its edges: cancels during a rollback, an outcome that could not be stored on the
last attempt, cancelled and re-asked resumes, a cancel after an action, and recovery at a breakpoint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.core.checkpoint_tags import CHECKPOINT_TAG, ROLLBACK_TAG
from parley.core.errors import StorageUnavailable
from tests.conftest import AppHarness
from tests.crashes import crash_during_turn, restarted
from tests.integration.test_chat_api import poll_until_terminal
from tests.waiting import wait_until_async

ALICE = {"X-User-Id": "alice"}
ORDER_MUGS = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'


def _rows(h: AppHarness, table: str) -> list[dict[str, Any]]:
    if not h.backend.count(table):  # also when the table does not exist yet (the shop makes its own)
        return []
    return h.backend.query(f"SELECT * FROM {table}")


async def _status(h: AppHarness, message_id: str) -> str:
    response = await h.client.get(f"/v1/messages/{message_id}", headers=ALICE)
    return str(response.json()["status"])


async def _resume(h: AppHarness, sid: str, interrupt_id: str, value: Any, **body: Any) -> httpx.Response:
    return await h.client.post(
        f"/v1/sessions/{sid}/resume",
        json={"user_id": "alice", "interrupt_id": interrupt_id, "value": value, **body},
    )


async def _session(h: AppHarness, sid: str) -> dict[str, Any]:
    body: dict[str, Any] = (await h.client.get(f"/v1/sessions/{sid}", headers=ALICE)).json()
    return body


class _RollbackGate:
    """Holds every rollback at its write (the real checkpointer's ``aput`` of the checkpoint that undoes
    a turn) until ``release`` is set; ``entered`` says one is held."""

    def __init__(self, h: AppHarness) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        saver = h.services.checkpointer
        original = saver.aput

        async def gated(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
            # Parley's tags ride in the config's metadata; the saver stores them with the checkpoint.
            if ROLLBACK_TAG in (config.get("metadata") or {}):
                self.entered.set()
                await self.release.wait()
            return await original(config, checkpoint, metadata, versions)

        saver.aput = gated


def _count_cancels(h: AppHarness) -> list[str]:
    """Every message id the runner was asked to cancel, once it has delivered the cancel."""
    runner: Any = h.services.runner
    original: Callable[[str], Awaitable[None]] = runner.cancel
    calls: list[str] = []

    async def counting(message_id: str) -> None:
        await original(message_id)
        calls.append(message_id)

    runner.cancel = counting
    return calls


async def _cancel(h: AppHarness, message_id: str) -> httpx.Response:
    return await h.client.post(f"/v1/messages/{message_id}/cancel", headers=ALICE)


# -- a cancel during a rollback ---------------------------------------------------------------------


@pytest.mark.inprocess_only  # reaches into the in-process runner or its checkpointer
async def test_a_cancel_during_the_rollback_of_a_failed_turn_still_ends_it(harness: AppHarness) -> None:
    h = harness
    sid = (await h.chat(message="one")).json()["session_id"]
    gate = _RollbackGate(h)
    cancels = _count_cancels(h)
    failing = (await h.chat(message="[[fail]] two", session_id=sid, wait=0)).json()
    await asyncio.wait_for(gate.entered.wait(), 10)
    cancel = asyncio.create_task(_cancel(h, failing["message_id"]))
    await wait_until_async(lambda: _done(cancels == [failing["message_id"]]), what="the cancel to land")
    gate.release.set()

    final = await poll_until_terminal(h.client, failing["message_id"])
    assert final["status"] == "failed"
    assert final["error"]["type"] == "turn_failed"
    refused = await cancel
    assert refused.status_code == 409  # it had failed before the cancel came
    after = (await h.chat(message="three", session_id=sid)).json()
    assert after["status"] == "completed"
    assert after["reply"] == "Echo: three"


@pytest.mark.inprocess_only  # reaches into the in-process runner or its checkpointer
async def test_a_second_cancel_during_the_rollback_still_ends_the_turn(harness: AppHarness) -> None:
    h = harness
    sid = (await h.chat(message="one")).json()["session_id"]
    gate = _RollbackGate(h)
    cancels = _count_cancels(h)
    slow = (await h.chat(message="[[sleep:30]] two", session_id=sid, wait=0)).json()
    mid = slow["message_id"]
    await wait_until_async(lambda: _wrote(h, sid, mid), what="the turn to write its first checkpoint")
    first = asyncio.create_task(_cancel(h, mid))
    await asyncio.wait_for(gate.entered.wait(), 10)
    second = asyncio.create_task(_cancel(h, mid))
    await wait_until_async(lambda: _done(cancels == [mid, mid]), what="the second cancel to land")
    gate.release.set()

    final = await poll_until_terminal(h.client, mid)
    assert final["status"] == "cancelled"
    assert [(await first).status_code, (await second).status_code] == [200, 200]
    after = (await h.chat(message="three", session_id=sid)).json()
    assert after["status"] == "completed"


async def _done(value: bool) -> bool:
    return value


async def _wrote(h: AppHarness, session_id: str, message_id: str) -> bool:
    """Whether the session's latest checkpoint is the turn's own: it has something to roll back."""
    latest = await h.services.checkpointer.aget_tuple({"configurable": {"thread_id": session_id}})
    return latest is not None and latest.metadata.get(CHECKPOINT_TAG) == message_id


async def _is(h: AppHarness, message_id: str, status: str) -> bool:
    return await _status(h, message_id) == status


# -- an outcome that could not be stored ------------------------------------------------------------


@pytest.mark.inprocess_only  # reaches into the in-process runner or its checkpointer
async def test_a_turn_that_finished_on_its_last_attempt_keeps_its_outcome_when_storing_it_failed(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(max_attempts=1))
    store: Any = h.services.store
    original = store.finish
    refused: list[str] = []

    async def finish_unavailable_once(**kwargs: Any) -> Any:
        if not refused:
            refused.append(kwargs["message_id"])
            raise StorageUnavailable("Storage is temporarily unavailable; retry.")
        return await original(**kwargs)

    store.finish = finish_unavailable_once
    body = (await h.chat(message="hello there", wait=0)).json()
    final = await poll_until_terminal(h.client, body["message_id"])
    assert refused == [body["message_id"]]
    assert final["status"] == "completed"
    assert final["reply"] == "Echo: hello there"
    assert final["attempts"] == 2

    # Paused on its last attempt: the same interrupt, which then resumes the graph where it stopped.
    refused.clear()
    asked = (await h.chat(message=ORDER_MUGS, session_id=body["session_id"], wait=0)).json()
    paused = await poll_until_terminal(h.client, asked["message_id"])
    assert refused == [asked["message_id"]]
    assert paused["status"] == "interrupted"
    assert paused["interrupt"][0]["kind"] == "confirm"
    done = (await _resume(h, body["session_id"], paused["interrupt"][0]["id"], "yes")).json()
    assert done["status"] == "completed"
    assert len(_rows(h, "parley_orders")) == 1


# -- resumes that do not happen ---------------------------------------------------------------------


ONE_TURN_AT_A_TIME = {"max_concurrent_turns": 1, "worker_concurrency": 1}
"""One turn slot in whichever process runs turns: the in-process runner's, or the worker's (the queue
backend's worker would otherwise run eight at once, and what a test means to keep queued would start)."""


async def _hold_the_only_slot(h: AppHarness) -> str:
    """A slow turn on another session: with one turn at a time, what is accepted next stays queued."""
    holder = (await h.chat(user_id="alice", message="[[sleep:30]] hold", wait=0)).json()
    await wait_until_async(lambda: _is(h, holder["message_id"], "running"), what="the slot holder to run")
    return str(holder["message_id"])


async def test_cancelling_a_queued_resume_gives_its_interrupt_back(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(**ONE_TURN_AT_A_TIME))
    asked = (await h.chat(message=ORDER_MUGS)).json()
    sid, iid = asked["session_id"], asked["interrupt"][0]["id"]
    holder = await _hold_the_only_slot(h)
    queued = await _resume(h, sid, iid, "yes", wait=0)
    assert queued.json()["status"] == "queued"

    cancelled = await _cancel(h, queued.json()["message_id"])
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    session = await _session(h, sid)
    assert session["status"] == "interrupted"
    assert [i["id"] for i in session["pending_interrupts"]] == [iid]
    refused = await h.chat(message="anyone there?", session_id=sid)
    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/session-interrupted"

    assert (await _cancel(h, holder)).status_code == 200  # frees the slot
    done = await _resume(h, sid, iid, "yes")
    assert done.status_code == 200
    assert done.json()["status"] == "completed"
    assert len(_rows(h, "parley_orders")) == 1


async def test_a_chat_queued_behind_a_resume_that_paused_again_does_not_run_over_the_pause(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(**ONE_TURN_AT_A_TIME))
    asked = (await h.chat(message=ORDER_MUGS)).json()
    sid, iid = asked["session_id"], asked["interrupt"][0]["id"]
    holder = await _hold_the_only_slot(h)
    unreadable = (await _resume(h, sid, iid, "maybe?", wait=0)).json()
    behind = (await h.chat(message="hello?", session_id=sid, wait=0)).json()
    assert behind["status"] == "queued"  # accepted: the interrupt was answered, its resume still queued
    assert (await _cancel(h, holder)).status_code == 200

    again = await poll_until_terminal(h.client, unreadable["message_id"])
    assert again["status"] == "interrupted"  # the answer could not be read: asked again
    refused = await poll_until_terminal(h.client, behind["message_id"])
    assert refused["status"] == "failed"
    assert refused["error"]["type"] == "session_interrupted"
    session = await _session(h, sid)
    assert session["status"] == "interrupted"
    [pending] = session["pending_interrupts"]
    assert pending["id"] == again["interrupt"][0]["id"]
    done = (await _resume(h, sid, pending["id"], "yes")).json()
    assert done["status"] == "completed"
    assert len(_rows(h, "parley_orders")) == 1


# -- a cancel after the turn's action ran ------------------------------------------------------------


async def test_a_resume_whose_action_ran_can_no_longer_be_cancelled(
    harness_factory: Any, make_settings: Any, tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            [
                {"tool_calls": [{"name": "place_order", "args": {"item": "mug", "quantity": 2}}]},
                {"text": "Your two mugs are ordered.", "delay": 3},
            ]
        )
    )
    h: AppHarness = await harness_factory(make_settings(scripted_script=script))
    asked = (await h.chat(message="buy two mugs")).json()
    assert asked["status"] == "interrupted"
    sid, iid = asked["session_id"], asked["interrupt"][0]["id"]
    approving = (await _resume(h, sid, iid, {"decision": "approve"}, wait=0)).json()

    async def ordered() -> bool:
        return len(_rows(h, "parley_orders")) == 1

    await wait_until_async(ordered, what="the order to be placed")
    refused = await _cancel(h, approving["message_id"])
    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/action-performed"
    assert "can no longer be cancelled" in refused.json()["detail"]

    final = await poll_until_terminal(h.client, approving["message_id"])
    assert final["status"] == "completed"
    assert final["reply"] == "Your two mugs are ordered."
    session = await _session(h, sid)
    assert session["status"] == "idle"
    assert session["pending_interrupts"] == []
    assert len(_rows(h, "parley_orders")) == 1


async def test_a_resume_cancelled_before_its_action_asks_again_and_acts_once(
    harness_factory: Any, make_settings: Any
) -> None:
    """The other side of the rule: cancelled before the action, nothing happened, so asking again is
    right — and the action then happens once."""
    h: AppHarness = await harness_factory(make_settings(**ONE_TURN_AT_A_TIME))
    asked = (await h.chat(message=ORDER_MUGS)).json()
    sid, iid = asked["session_id"], asked["interrupt"][0]["id"]
    holder = await _hold_the_only_slot(h)
    queued = (await _resume(h, sid, iid, "yes", wait=0)).json()
    assert (await _cancel(h, queued["message_id"])).json()["status"] == "cancelled"
    assert (await _cancel(h, holder)).status_code == 200
    assert _rows(h, "parley_orders") == []
    assert (await _resume(h, sid, iid, "yes")).json()["status"] == "completed"
    assert len(_rows(h, "parley_orders")) == 1


async def test_an_action_after_a_recorded_cancel_is_refused_and_the_turn_ends_cancelled(
    harness_factory: Any, make_settings: Any
) -> None:
    """A cancel recorded in storage before the turn's action, whose cancellation of the task has not
    landed yet: the action is refused, so nothing happened and asking again is right."""
    h: AppHarness = await harness_factory(make_settings(**ONE_TURN_AT_A_TIME))
    asked = (await h.chat(message=ORDER_MUGS)).json()
    sid, iid = asked["session_id"], asked["interrupt"][0]["id"]
    holder = await _hold_the_only_slot(h)
    approving = (await _resume(h, sid, iid, "yes", wait=0)).json()
    assert await h.services.store.mark_cancel_requested(message_id=approving["message_id"]) is not None
    assert (await _cancel(h, holder)).status_code == 200

    final = await poll_until_terminal(h.client, approving["message_id"])
    assert final["status"] == "cancelled"
    assert _rows(h, "parley_orders") == []
    session = await _session(h, sid)
    [again] = session["pending_interrupts"]
    assert again["value"]["question"] == "Place an order for 2 x mug ($18.00)?"


# -- recovery at an interrupt_after breakpoint ------------------------------------------------------


@pytest.mark.inprocess_only  # reaches into the in-process runner or its checkpointer
async def test_a_crash_right_after_an_interrupt_after_step_recovers_at_the_breakpoint(
    make_settings: Any,
) -> None:
    """LangGraph decides an ``interrupt_after`` pause after saving the step's checkpoint. Killed in
    between, recovery must report the breakpoint, not run the next node."""
    settings = make_settings(interrupt_after=["agent"])
    accepted = await crash_during_turn(
        settings,
        message="pause after",
        at=lambda checkpoint, metadata: (
            metadata.get("source") == "loop" and "agent" in checkpoint["versions_seen"]
        ),
        after_saving=True,
    )
    async with restarted(settings) as client:
        final = await poll_until_terminal(client, accepted["message_id"])
        assert final["status"] == "interrupted"
        [paused] = final["interrupt"]
        assert paused["kind"] == "breakpoint"
        assert paused["value"]["nodes"] == ["review"]  # the node after the breakpoint has not run
        assert final["attempts"] == 2
        done = await client.post(
            f"/v1/sessions/{final['session_id']}/resume",
            json={"user_id": "alice", "interrupt_id": paused["id"], "value": None},
        )
        assert done.json()["status"] == "completed"
        assert done.json()["reply"] == "Echo: pause after"


@pytest.mark.inprocess_only  # reaches into the in-process runner or its checkpointer
async def test_a_turn_that_ends_cancelled_does_not_end_its_sessions_loop(harness: AppHarness) -> None:
    """Whatever lets a cancellation out of a turn, the session's loop goes on and the message is run
    again rather than left ``running`` with no turn."""
    executor: Any = harness.services.runner._executor  # type: ignore[attr-defined]
    original = executor.run
    escaped: list[str] = []

    async def cancelled_once(message: Any) -> Any:
        if not escaped:
            escaped.append(message.message_id)
            await harness.services.store.mark_running(message_id=message.message_id)
            raise asyncio.CancelledError
        return await original(message)

    executor.run = cancelled_once
    body = (await harness.chat(message="still answered", wait=10)).json()
    assert escaped == [body["message_id"]]
    assert body["status"] == "completed"
    assert body["reply"] == "Echo: still answered"
