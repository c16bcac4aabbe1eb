"""Requests that race for one thing, over separate connections released at once: exactly one wins, and the
data shows one winner's effects. See tests/e2e/racing.py for how the race is run and on what."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.e2e.racing import Deployment, most_in_flight, race
from tests.e2e.test_server import ALICE, poll

RACERS = 12
ORDER = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'


def test_resumes_of_one_interrupt_racing_on_separate_connections_let_exactly_one_through(
    make_deployment: Callable[..., Deployment],
) -> None:
    deployment = make_deployment()
    with httpx.Client(base_url=deployment.base_urls[0], timeout=30) as client:
        paused = client.post("/v1/chat", json={"user_id": "alice", "message": ORDER}).json()
    assert paused["status"] == "interrupted", paused
    session_id, interrupt_id = paused["session_id"], paused["interrupt"][0]["id"]

    answers = race(
        deployment,
        RACERS,
        lambda i: (
            "POST",
            f"/v1/sessions/{session_id}/resume",
            {"user_id": "alice", "interrupt_id": interrupt_id, "value": {"decision": "approve"}, "wait": 0},
        ),
    )

    assert most_in_flight(answers) >= 2, "the requests did not overlap: nothing raced"
    won = [a for a in answers if a.status_code in (200, 202)]
    lost = [a for a in answers if a.status_code == 409]
    assert len(won) == 1, [(a.status_code, a.body) for a in answers]
    assert len(lost) == RACERS - 1, [(a.status_code, a.body) for a in answers]
    assert {a.body["type"] for a in lost} == {"/problems/interrupt-not-pending"}
    with httpx.Client(base_url=deployment.base_urls[0], timeout=30) as client:
        final = poll(client, won[0].body["message_id"])
        session = client.get(f"/v1/sessions/{session_id}", headers=ALICE).json()
    assert final["status"] == "completed", final
    assert '"ok": true' in final["reply"]
    assert session["message_count"] == 2
    assert deployment.count_rows("parley_messages", session_id=session_id, kind="resume") == 1
    assert deployment.count_rows("parley_orders") == 1


def test_chats_racing_into_one_session_under_the_reject_policy_let_exactly_one_through(
    make_deployment: Callable[..., Deployment],
) -> None:
    deployment = make_deployment(PARLEY_BUSY_POLICY="reject")
    with httpx.Client(base_url=deployment.base_urls[0], timeout=30) as client:
        session_id = client.post("/v1/chat", json={"user_id": "alice", "message": "hello"}).json()[
            "session_id"
        ]

    def chat(i: int) -> tuple[str, str, dict[str, Any]]:
        # The winner's turn outlasts the race, so that a late racer finds the session busy, not idle again.
        body = {"user_id": "alice", "session_id": session_id, "message": f"[[sleep:2]] m{i}", "wait": 0}
        return "POST", "/v1/chat", body

    answers = race(deployment, RACERS, chat)

    assert most_in_flight(answers) >= 2, "the requests did not overlap: nothing raced"
    won = [a for a in answers if a.status_code == 202]
    lost = [a for a in answers if a.status_code == 409]
    assert len(won) == 1, [(a.status_code, a.body) for a in answers]
    assert len(lost) == RACERS - 1, [(a.status_code, a.body) for a in answers]
    assert {a.body["type"] for a in lost} == {"/problems/session-busy"}
    assert {a.body["message_id"] for a in lost} == {won[0].body["message_id"]}
    assert deployment.count_rows("parley_messages", session_id=session_id) == 2
