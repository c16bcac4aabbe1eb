"""Human in the loop over HTTP: confirmations, operator review, strict resumes, several interrupts,
static breakpoints, failed resumes."""

from __future__ import annotations

import json
from typing import Any

from parley.bots.assistant import REVIEW_DECLINED_REPLY
from parley.core.redaction import REVIEW_NOTICE
from tests.conftest import AppHarness

ALICE = {"X-User-Id": "alice"}
OPERATOR = {"X-User-Id": "op-1", "X-Role": "operator"}
ORDER_MUGS = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'


def _rows(h: AppHarness, table: str) -> list[dict[str, Any]]:
    if not h.backend.count(table):  # also when the table does not exist yet (the shop makes its own)
        return []
    return h.backend.query(f"SELECT * FROM {table}")


async def _resume(
    h: AppHarness,
    sid: str,
    interrupt_id: str,
    value: Any,
    *,
    headers: dict[str, str] | None = None,
    user: str = "alice",
) -> Any:
    return await h.client.post(
        f"/v1/sessions/{sid}/resume",
        json={"user_id": user, "interrupt_id": interrupt_id, "value": value},
        headers=headers or {},
    )


async def _confirmation(h: AppHarness, message: str = ORDER_MUGS) -> dict[str, Any]:
    body: dict[str, Any] = (await h.chat(message=message)).json()
    assert body["status"] == "interrupted", body
    return body


async def test_an_action_waits_for_the_users_confirmation_then_runs_once(harness: AppHarness) -> None:
    body = await _confirmation(harness)
    [pending] = body["interrupt"]
    assert pending["kind"] == "confirm"
    assert pending["value"]["action"] == "place_order"
    assert pending["value"]["args"] == {"item": "mug", "quantity": 2}
    assert pending["value"]["question"] == "Place an order for 2 x mug ($18.00)?"
    assert _rows(harness, "parley_orders") == []
    session = (await harness.client.get(f"/v1/sessions/{body['session_id']}", headers=ALICE)).json()
    assert session["status"] == "interrupted"
    assert [i["id"] for i in session["pending_interrupts"]] == [pending["id"]]

    done = await _resume(harness, body["session_id"], pending["id"], {"decision": "approve"})
    assert done.status_code == 200
    assert done.json()["status"] == "completed"
    assert done.json()["kind"] == "resume"
    assert '"ok": true' in done.json()["reply"]
    [order] = _rows(harness, "parley_orders")
    assert (order["item"], order["quantity"], order["total"], order["user_id"]) == ("mug", 2, 18.0, "alice")
    session = (await harness.client.get(f"/v1/sessions/{body['session_id']}", headers=ALICE)).json()
    assert session["status"] == "idle"
    assert session["pending_interrupts"] == []


async def test_rejecting_an_action_means_it_never_happens(harness: AppHarness) -> None:
    body = await _confirmation(harness)
    done = await _resume(
        harness, body["session_id"], body["interrupt"][0]["id"], {"decision": "reject", "reason": "too many"}
    )
    assert done.json()["status"] == "completed"
    assert '"declined": true' in done.json()["reply"]
    assert _rows(harness, "parley_orders") == []


async def test_editing_an_action_runs_the_edited_one(harness: AppHarness) -> None:
    body = await _confirmation(harness)
    done = await _resume(
        harness, body["session_id"], body["interrupt"][0]["id"], {"decision": "edit", "args": {"quantity": 3}}
    )
    assert done.json()["status"] == "completed"
    [order] = _rows(harness, "parley_orders")
    assert (order["quantity"], order["total"]) == (3, 27.0)


async def test_an_unreadable_answer_asks_again(harness: AppHarness) -> None:
    body = await _confirmation(harness)
    again = (await _resume(harness, body["session_id"], body["interrupt"][0]["id"], "maybe?")).json()
    assert again["status"] == "interrupted"
    assert "error" in again["interrupt"][0]["value"]
    done = (await _resume(harness, body["session_id"], again["interrupt"][0]["id"], "yes")).json()
    assert done["status"] == "completed"
    assert len(_rows(harness, "parley_orders")) == 1


async def test_stale_and_unknown_resumes_are_409_and_change_nothing(harness: AppHarness) -> None:
    body = await _confirmation(harness)
    sid, iid = body["session_id"], body["interrupt"][0]["id"]
    assert (await _resume(harness, sid, iid, "yes")).status_code == 200
    stale = await _resume(harness, sid, iid, "yes")
    assert stale.status_code == 409
    assert stale.json()["type"] == "/problems/interrupt-not-pending"
    unknown = await _resume(harness, sid, "no-such-interrupt", "yes")
    assert unknown.status_code == 409
    other = await _confirmation(harness)
    cross = await _resume(harness, sid, other["interrupt"][0]["id"], "yes")  # another session's interrupt
    assert cross.status_code == 409
    session = (await harness.client.get(f"/v1/sessions/{sid}", headers=ALICE)).json()
    assert session["message_count"] == 2
    assert len(_rows(harness, "parley_orders")) == 1


async def test_a_chat_message_to_an_interrupted_session_is_refused_naming_the_interrupt(
    harness: AppHarness,
) -> None:
    body = await _confirmation(harness)
    refused = await harness.chat(message="hello?", session_id=body["session_id"])
    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/session-interrupted"
    assert refused.json()["interrupt_id"] == body["interrupt"][0]["id"]


async def test_a_chat_message_can_be_taken_as_the_answer(harness_factory: Any, make_settings: Any) -> None:
    h: AppHarness = await harness_factory(make_settings(chat_while_interrupted="answer"))
    body = await _confirmation(h)
    answer = (await h.chat(message="yes", session_id=body["session_id"])).json()
    assert answer["status"] == "completed"
    assert len(_rows(h, "parley_orders")) == 1
    items = (await h.client.get(f"/v1/sessions/{body['session_id']}/messages", headers=ALICE)).json()["items"]
    assert [i["content"] for i in items if i["role"] == "user"] == [ORDER_MUGS, "yes"]


async def _review(h: AppHarness) -> dict[str, Any]:
    body: dict[str, Any] = (
        await h.chat(message="[[reply:Take a dosage of 400 mg twice a day.]] how much?")
    ).json()
    assert body["status"] == "interrupted", body
    assert body["interrupt"][0]["kind"] == "review"
    return body


async def test_a_flagged_draft_waits_for_an_operator_not_the_user(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(operator_header_enabled=True))
    body = await _review(h)
    review = body["interrupt"][0]
    # The user learns that a review is pending, never what it is about (tests/integration/test_review_gate.py).
    assert review["value"] == {"kind": "review", "question": REVIEW_NOTICE}
    by_user = await _resume(h, body["session_id"], review["id"], {"decision": "approve"})
    assert by_user.status_code == 403
    queue = (await h.client.get("/v1/interrupts", params={"kind": "review"}, headers=OPERATOR)).json()[
        "items"
    ]
    assert [(i["interrupt_id"], i["session_id"], i["user_id"]) for i in queue] == [
        (review["id"], body["session_id"], "alice")
    ]
    assert queue[0]["value"]["draft"] == "Take a dosage of 400 mg twice a day."
    assert queue[0]["value"]["reasons"] == ["mentions 'dosage'"]
    approved = await _resume(
        h, body["session_id"], review["id"], {"decision": "approve"}, headers=OPERATOR, user="op-1"
    )
    assert approved.status_code == 200
    assert approved.json()["reply"] == "Take a dosage of 400 mg twice a day."
    assert (await h.client.get("/v1/interrupts", headers=OPERATOR)).json()["items"] == []
    # The user polls the operator's message like any other of their session.
    own = await h.client.get(f"/v1/messages/{approved.json()['message_id']}", headers=ALICE)
    assert own.status_code == 200


async def test_an_operator_edits_or_rejects_a_draft(harness_factory: Any, make_settings: Any) -> None:
    h: AppHarness = await harness_factory(make_settings(operator_header_enabled=True))
    body = await _review(h)
    edited = await _resume(
        h,
        body["session_id"],
        body["interrupt"][0]["id"],
        {"decision": "edit", "text": "Please ask your doctor."},
        headers=OPERATOR,
        user="op-1",
    )
    assert edited.json()["reply"] == "Please ask your doctor."
    body = await _review(h)
    rejected = await _resume(
        h,
        body["session_id"],
        body["interrupt"][0]["id"],
        {"decision": "reject"},
        headers=OPERATOR,
        user="op-1",
    )
    assert rejected.json()["reply"] == REVIEW_DECLINED_REPLY
    items = (await h.client.get(f"/v1/sessions/{body['session_id']}/messages", headers=ALICE)).json()["items"]
    replies = [i["content"] for i in items if i["role"] == "assistant"]
    assert not any("dosage of 400" in r for r in replies)  # the rejected draft never reached the user


async def test_an_amount_over_the_limit_is_reviewed(harness_factory: Any, make_settings: Any) -> None:
    h: AppHarness = await harness_factory(
        make_settings(operator_header_enabled=True, review_amount_limit=100)
    )
    body = await _confirmation(h, '[[tool:place_order|{"item": "hoodie", "quantity": 4}]] hoodies')
    reviewed = (await _resume(h, body["session_id"], body["interrupt"][0]["id"], "yes")).json()
    assert reviewed["status"] == "interrupted"
    assert reviewed["interrupt"][0]["kind"] == "review"
    [queued] = (await h.client.get("/v1/interrupts", headers=OPERATOR)).json()["items"]
    assert "over the review limit" in queued["value"]["reasons"][0]


async def test_the_operator_role_is_refused_while_its_setting_is_off(harness: AppHarness) -> None:
    assert (await harness.client.get("/v1/interrupts", headers=OPERATOR)).status_code == 403


async def test_operator_routes_need_the_role(harness_factory: Any, make_settings: Any) -> None:
    on: AppHarness = await harness_factory(make_settings(operator_header_enabled=True))
    assert (await on.client.get("/v1/interrupts")).status_code == 403
    bad = await on.client.get("/v1/interrupts", headers={"X-Role": "admin"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "header.X-Role"
    assert (
        await on.client.get("/v1/interrupts", params={"kind": "nope"}, headers=OPERATOR)
    ).status_code == 422


async def test_several_pending_interrupts_are_answered_by_id(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graph="tests.graphs.parallel:graph"))
    body = (await h.chat(message="choose")).json()
    assert body["status"] == "interrupted"
    by_question = {i["value"]["question"]: i["id"] for i in body["interrupt"]}
    assert set(by_question) == {"colour", "size"}
    first = (await _resume(h, body["session_id"], by_question["size"], "large")).json()
    assert first["status"] == "interrupted"
    assert [i["id"] for i in first["interrupt"]] == [by_question["colour"]]
    second = (await _resume(h, body["session_id"], by_question["colour"], "blue")).json()
    assert second["status"] == "completed"
    assert second["reply"] == "colour=blue, size=large"


async def test_a_failed_resume_asks_again_and_takes_the_new_answer(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graph="tests.graphs.parallel:graph"))
    body = (await h.chat(message="choose")).json()
    by_question = {i["value"]["question"]: i["id"] for i in body["interrupt"]}
    failed = (await _resume(h, body["session_id"], by_question["colour"], "boom")).json()
    assert failed["status"] == "failed"
    session = (await h.client.get(f"/v1/sessions/{body['session_id']}", headers=ALICE)).json()
    assert session["status"] == "interrupted"
    again = {i["value"]["question"]: i["id"] for i in session["pending_interrupts"]}
    assert set(again) == {"colour", "size"}
    await _resume(h, body["session_id"], again["colour"], "red")
    done = (await _resume(h, body["session_id"], again["size"], "small")).json()
    assert done["status"] == "completed"
    assert done["reply"] == "colour=red, size=small"


async def test_static_breakpoints_from_settings(harness_factory: Any, make_settings: Any) -> None:
    h: AppHarness = await harness_factory(
        make_settings(graph="tests.graphs.counting:graph", interrupt_before=["respond"])
    )
    body = (await h.chat(message="hi")).json()
    assert body["status"] == "interrupted"
    [paused] = body["interrupt"]
    assert paused["kind"] == "breakpoint"
    assert paused["value"]["nodes"] == ["respond"]
    done = (await _resume(h, body["session_id"], paused["id"], None)).json()
    assert done["status"] == "completed"
    assert json.loads(done["reply"])["seen"] == 1


async def test_a_resume_retried_with_its_idempotency_key_is_one_answer(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(operator_header_enabled=True))
    body = await _confirmation(h)
    sid, iid = body["session_id"], body["interrupt"][0]["id"]
    headers = {"Idempotency-Key": "resume-1"}
    first = await _resume(h, sid, iid, "yes", headers=headers)
    again = await _resume(h, sid, iid, "yes", headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["message_id"] == again.json()["message_id"]
    assert len(_rows(h, "parley_orders")) == 1
    # The same key from the session's owner for a chat message is a different request, in its own space.
    chat = await h.client.post(
        "/v1/chat", json={"user_id": "alice", "message": "thanks", "session_id": sid}, headers=headers
    )
    assert chat.status_code == 200


async def test_a_breakpoint_after_a_node_pauses_with_its_work_done(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(
        make_settings(graph="tests.graphs.counting:graph", interrupt_after=["respond"])
    )
    body = (await h.chat(message="hi")).json()
    assert body["status"] == "interrupted"
    [paused] = body["interrupt"]
    assert paused["kind"] == "breakpoint"
    done = (await _resume(h, body["session_id"], paused["id"], "go on")).json()
    assert done["status"] == "completed"
    assert json.loads(done["reply"])["runs"] == 1  # the node ran before the pause, not again after it
