"""The operator's review gate: a flagged draft reaches no end user — not in a chat or resume response, a
message or session view, a 409 body or a token stream — while operators see all of it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from parley.core.events import MessageEvent
from parley.core.redaction import REVIEW_NOTICE
from tests.conftest import AppHarness

ALICE = {"X-User-Id": "alice"}
OPERATOR = {"X-User-Id": "op-1", "X-Role": "operator"}
DRAFT = "Take a dosage of 400 mg twice a day."
FLAGGED = f"[[reply:{DRAFT}]] how much?"
REASON = "mentions 'dosage'"
HOODIES = '[[tool:place_order|{"item": "hoodie", "quantity": 4}]] four hoodies'


def _redacted(response: httpx.Response, *, pending: list[dict[str, Any]]) -> str:
    """The one review the user sees: its id and kind and a notice, nothing of the draft. Returns its id."""
    [review] = pending
    assert review["kind"] == "review"
    assert review["value"] == {"kind": "review", "question": REVIEW_NOTICE}
    for secret in ("400 mg", "dosage", "reasons", "draft", "over the review limit", "Tool results"):
        assert secret not in response.text, response.text
    return str(review["id"])


def _status(event: Any) -> str:
    """The status a ``done`` event reports: the record in process, a summary from a worker."""
    data = event.data
    return str(data["status"] if isinstance(data, dict) else data.status)


async def _flagged(h: AppHarness) -> tuple[httpx.Response, dict[str, Any]]:
    response = await h.chat(message=FLAGGED)
    body: dict[str, Any] = response.json()
    assert body["status"] == "interrupted", body
    return response, body


async def _events_until_done(queue: asyncio.Queue[MessageEvent]) -> list[MessageEvent]:
    events = []
    while True:
        event = await asyncio.wait_for(queue.get(), 10)
        events.append(event)
        if event.kind == "done":
            return events


async def test_the_users_chat_response_shows_a_pending_review_not_the_draft(harness: AppHarness) -> None:
    response, body = await _flagged(harness)
    _redacted(response, pending=body["interrupt"])


async def test_the_message_and_session_views_hide_the_draft_from_the_user(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(operator_header_enabled=True))
    _, body = await _flagged(h)
    message = await h.client.get(f"/v1/messages/{body['message_id']}", headers=ALICE)
    iid = _redacted(message, pending=message.json()["interrupt"])
    session = await h.client.get(f"/v1/sessions/{body['session_id']}", headers=ALICE)
    assert session.json()["status"] == "interrupted"
    assert _redacted(session, pending=session.json()["pending_interrupts"]) == iid
    # The same resources read by an operator hold everything.
    as_operator = (await h.client.get(f"/v1/messages/{body['message_id']}", headers=OPERATOR)).json()
    [review] = as_operator["interrupt"]
    assert (review["id"], review["value"]["draft"], review["value"]["reasons"]) == (iid, DRAFT, [REASON])
    session_for_operator = (await h.client.get(f"/v1/sessions/{body['session_id']}", headers=OPERATOR)).json()
    assert session_for_operator["pending_interrupts"] == [review]


async def test_a_chat_refused_while_a_review_is_pending_does_not_list_the_draft(harness: AppHarness) -> None:
    _, body = await _flagged(harness)
    refused = await harness.chat(message="well?", session_id=body["session_id"])
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["type"] == "/problems/session-interrupted"
    assert _redacted(refused, pending=problem["pending"]) == body["interrupt"][0]["id"]


async def test_a_resume_whose_outcome_is_reviewed_shows_the_user_no_draft(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(
        make_settings(operator_header_enabled=True, review_amount_limit=100)
    )
    body = (await h.chat(message=HOODIES)).json()
    assert body["interrupt"][0]["kind"] == "confirm"  # the user's own question stays visible
    resumed = await h.client.post(
        f"/v1/sessions/{body['session_id']}/resume",
        json={"user_id": "alice", "interrupt_id": body["interrupt"][0]["id"], "value": "yes"},
    )
    assert resumed.json()["status"] == "interrupted"
    iid = _redacted(resumed, pending=resumed.json()["interrupt"])
    [queued] = (await h.client.get("/v1/interrupts", headers=OPERATOR)).json()["items"]
    assert queued["interrupt_id"] == iid
    assert queued["value"]["draft"].startswith("Tool results: place_order:")
    assert "over the review limit" in queued["value"]["reasons"][0]


async def test_operators_see_the_draft_everywhere_and_release_it(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(operator_header_enabled=True))
    _, body = await _flagged(h)
    iid = body["interrupt"][0]["id"]
    [queued] = (await h.client.get("/v1/interrupts", params={"kind": "review"}, headers=OPERATOR)).json()[
        "items"
    ]
    assert (queued["interrupt_id"], queued["value"]["draft"], queued["value"]["reasons"]) == (
        iid,
        DRAFT,
        [REASON],
    )
    # An answer the graph cannot read asks the operator again: the operator's own response holds the
    # draft, the user's view of that same message does not.
    again = await h.client.post(
        f"/v1/sessions/{body['session_id']}/resume",
        json={"user_id": "op-1", "interrupt_id": iid, "value": "hmm"},
        headers=OPERATOR,
    )
    [asked] = again.json()["interrupt"]
    assert (asked["value"]["draft"], "error" in asked["value"]) == (DRAFT, True)
    seen_by_user = await h.client.get(f"/v1/messages/{again.json()['message_id']}", headers=ALICE)
    _redacted(seen_by_user, pending=seen_by_user.json()["interrupt"])
    approved = await h.client.post(
        f"/v1/sessions/{body['session_id']}/resume",
        json={"user_id": "op-1", "interrupt_id": asked["id"], "value": {"decision": "approve"}},
        headers=OPERATOR,
    )
    assert approved.json()["reply"] == DRAFT  # approved, the draft is the user's reply
    assert (await h.client.get(f"/v1/messages/{approved.json()['message_id']}", headers=ALICE)).json()[
        "reply"
    ] == DRAFT


async def test_no_token_of_a_flagged_draft_is_streamed_but_an_unflagged_reply_streams(
    harness: AppHarness,
) -> None:
    sid = (await harness.chat(message="hello")).json()["session_id"]

    async def stream(message: str) -> list[MessageEvent]:
        # Queued behind a sleeping turn, so the subscription is in place before this turn starts.
        await harness.chat(message="[[sleep:0.3]] wait", session_id=sid, wait=0)
        queued = (await harness.chat(message=message, session_id=sid, wait=0)).json()
        assert queued["status"] == "queued"
        async with harness.services.bus.subscribe(queued["message_id"]) as queue:
            events = await _events_until_done(queue)
        assert {"status": "running", "attempt": 1} in [
            e.data for e in events if e.kind == "status"
        ]  # saw it all
        return events

    unflagged = await stream("[[reply:Mugs are nine dollars each.]] price?")
    assert _status(unflagged[-1]) == "completed"
    tokens = [e.data["text"] for e in unflagged if e.kind == "token"]
    assert len(tokens) > 3
    assert "".join(tokens) == "Mugs are nine dollars each."

    flagged = await stream(FLAGGED)
    assert _status(flagged[-1]) == "interrupted"
    assert {"node": "agent", "namespace": []} in [e.data for e in flagged if e.kind == "update"]
    assert [e.data for e in flagged if e.kind == "token"] == []


async def test_no_token_of_a_draft_flagged_after_a_resume_is_streamed(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(
        make_settings(review_amount_limit=100, max_concurrent_turns=1, worker_concurrency=1)
    )
    body = (await h.chat(message=HOODIES)).json()
    # Another session holds the only turn slot, so the resume waits and the subscription comes first.
    await h.chat(message="[[sleep:0.3]] busy", wait=0)
    accepted = (
        await h.client.post(
            f"/v1/sessions/{body['session_id']}/resume",
            json={"user_id": "alice", "interrupt_id": body["interrupt"][0]["id"], "value": "yes", "wait": 0},
        )
    ).json()
    assert accepted["status"] == "queued"
    async with h.services.bus.subscribe(accepted["message_id"]) as queue:
        events = await _events_until_done(queue)
    assert {"status": "running", "attempt": 1} in [e.data for e in events if e.kind == "status"]  # saw it all
    assert _status(events[-1]) == "interrupted"
    assert [e.data for e in events if e.kind == "update"][:2] == [
        {"node": "tools", "namespace": []},
        {"node": "agent", "namespace": []},
    ]
    assert [e.data for e in events if e.kind == "token"] == []
