"""Time travel over HTTP, on every backend: a session's checkpoints (history), rewinding to one, forking
from it, the transcript's branch marks, and what a rewind does to pending interrupts."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import AppHarness
from tests.integration.test_chat_api import poll_until_terminal

ALICE = {"X-User-Id": "alice"}
OPERATOR = {"X-User-Id": "op-1", "X-Role": "operator"}
COUNTING = "tests.graphs.counting:graph"
ORDER_MUGS = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'


async def _counting(harness_factory: Any, make_settings: Any, **settings: Any) -> AppHarness:
    h: AppHarness = await harness_factory(make_settings(graph=COUNTING, **settings))
    return h


async def _history(h: AppHarness, sid: str, **params: Any) -> list[dict[str, Any]]:
    response = await h.client.get(f"/v1/sessions/{sid}/history", headers=ALICE, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _all_history(h: AppHarness, sid: str, *, limit: int) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await h.client.get(f"/v1/sessions/{sid}/history", headers=ALICE, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def _end_of(history: list[dict[str, Any]], message_id: str) -> str:
    """The checkpoint a message's turn ended on: the newest it wrote."""
    return next(c["checkpoint_id"] for c in history if c["message_id"] == message_id)


async def _rewind(h: AppHarness, sid: str, checkpoint_id: str, **extra: Any) -> Any:
    return await h.client.post(
        f"/v1/sessions/{sid}/rewind", json={"user_id": "alice", "checkpoint_id": checkpoint_id, **extra}
    )


async def _transcript(h: AppHarness, sid: str) -> list[dict[str, Any]]:
    response = await h.client.get(f"/v1/sessions/{sid}/messages", headers=ALICE)
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _conversation(h: AppHarness, *texts: str) -> tuple[str, list[str]]:
    first = (await h.chat(message=texts[0])).json()
    sid, ids = first["session_id"], [first["message_id"]]
    for text in texts[1:]:
        body = (await h.chat(message=text, session_id=sid)).json()
        assert body["status"] == "completed", body
        ids.append(body["message_id"])
    return sid, ids


async def test_history_lists_checkpoints_newest_first_with_their_writers(
    harness_factory: Any, make_settings: Any
) -> None:
    h = await _counting(harness_factory, make_settings)
    sid, ids = await _conversation(h, "m0", "m1", "m2")
    history = await _history(h, sid, limit=200)
    # Each turn of the one-node graph: its input, the step applying it, the node's step.
    assert [c["message_id"] for c in history] == [m for m in reversed(ids) for _ in range(3)]
    assert [c["node"] for c in history[:3]] == ["respond", "__start__", "__input__"]
    assert [c["source"] for c in history[:3]] == ["loop", "loop", "input"]
    assert [c["step"] for c in history] == list(range(len(history) - 2, -2, -1))
    assert [c["parent_checkpoint_id"] for c in history[:-1]] == [c["checkpoint_id"] for c in history[1:]]
    assert history[-1]["parent_checkpoint_id"] is None
    times = [c["created_at"] for c in history]
    assert times == sorted(times, reverse=True)
    assert all(t.endswith("Z") and len(t) == len("2026-11-25T18:26:14.290986Z") for t in times)

    paged, pages = await _all_history(h, sid, limit=2)
    assert paged == history
    assert pages == 5  # 9 checkpoints, 2 a page


async def test_history_is_the_owners_and_operators_only(harness_factory: Any, make_settings: Any) -> None:
    harness: AppHarness = await harness_factory(make_settings(operator_header_enabled=True))
    sid = (await harness.chat(message="hi")).json()["session_id"]
    other = await harness.client.get(f"/v1/sessions/{sid}/history", headers={"X-User-Id": "mallory"})
    assert other.status_code == 404
    assert other.headers["content-type"].startswith("application/problem+json")
    seen = await harness.client.get(f"/v1/sessions/{sid}/history", headers=OPERATOR)
    assert seen.status_code == 200
    assert seen.json()["items"]
    bad = await harness.client.get(f"/v1/sessions/{sid}/history?cursor=not%20an%20id", headers=ALICE)
    assert bad.status_code == 422


async def test_a_rewind_forks_the_conversation_and_marks_the_transcript(
    harness_factory: Any, make_settings: Any
) -> None:
    h = await _counting(harness_factory, make_settings)
    sid, (m0, m1, m2) = await _conversation(h, "m0", "m1", "m2")
    history = await _history(h, sid, limit=200)

    rewound = await _rewind(h, sid, _end_of(history, m0))
    assert rewound.status_code == 200, rewound.text
    rewind = rewound.json()
    assert (rewind["kind"], rewind["status"], rewind["reply"]) == ("rewind", "completed", None)
    head = (await _history(h, sid, limit=1))[0]
    assert (head["node"], head["message_id"]) == ("__rewind__", rewind["message_id"])
    assert head["parent_checkpoint_id"] == _end_of(history, m0)

    fork = (await h.chat(message="fork", session_id=sid)).json()
    assert json.loads(fork["reply"])["seen"] == 2  # m0 and the fork: m1 and m2 are gone from the state
    lines = await _transcript(h, sid)
    assert [(line["content"][:4], line["on_branch"]) for line in lines if line["role"] == "user"] == [
        ("m0", True),
        ("m1", False),
        ("m2", False),
        ("fork", True),
    ]
    for line in lines:
        on = line["message_id"] in (m0, fork["message_id"])
        assert line["on_branch"] is on
        assert line["rewound_by"] == (None if on else rewind["message_id"])
        assert (line["rewound_at"] is None) is on

    # Back to the abandoned branch's end: its turns are on the branch again, the fork is not.
    again = await _rewind(h, sid, _end_of(history, m2))
    assert again.json()["status"] == "completed"
    lines = await _transcript(h, sid)
    assert {line["message_id"] for line in lines if line["on_branch"]} == {m0, m1, m2}
    after = (await h.chat(message="on", session_id=sid)).json()
    assert json.loads(after["reply"])["seen"] == 4


async def test_rewinding_to_a_turns_input_leaves_out_its_message(
    harness_factory: Any, make_settings: Any
) -> None:
    h = await _counting(harness_factory, make_settings)
    sid, (_m0, m1) = await _conversation(h, "m0", "m1")
    history = await _history(h, sid, limit=200)
    input_of_m1 = next(c for c in history if c["message_id"] == m1 and c["node"] == "__input__")
    assert (await _rewind(h, sid, input_of_m1["checkpoint_id"])).json()["status"] == "completed"
    lines = await _transcript(h, sid)
    assert [line["on_branch"] for line in lines] == [True, True, False, False]
    reply = (await h.chat(message="instead", session_id=sid)).json()["reply"]
    assert json.loads(reply)["seen"] == 2


async def test_a_rewind_is_refused_while_a_turn_is_queued_or_running(
    harness_factory: Any, make_settings: Any
) -> None:
    h = await _counting(harness_factory, make_settings)
    sid, (m0,) = await _conversation(h, "m0")
    target = _end_of(await _history(h, sid, limit=50), m0)
    busy = (await h.chat(message="[[sleep:0.5]] slow", session_id=sid, wait=0)).json()
    refused = await _rewind(h, sid, target)
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith("session-busy")
    assert h.backend.count("parley_messages", "kind = 'rewind'") == 0  # nothing was recorded
    # Once the turn has ended, the same rewind goes through.
    await poll_until_terminal(h.client, busy["message_id"])
    assert (await _rewind(h, sid, target)).status_code == 200


async def test_an_unknown_or_foreign_checkpoint_is_not_found(harness: AppHarness) -> None:
    sid = (await harness.chat(message="hi")).json()["session_id"]
    other = (await harness.chat(message="other")).json()["session_id"]
    foreign = (await _history(harness, other, limit=1))[0]["checkpoint_id"]
    for checkpoint_id in ("1f000000-0000-6000-8000-000000000000", foreign):
        response = await _rewind(harness, sid, checkpoint_id)
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    mallory = await harness.client.post(
        f"/v1/sessions/{sid}/rewind", json={"user_id": "mallory", "checkpoint_id": foreign}
    )
    assert mallory.status_code == 404
    bad = await _rewind(harness, sid, "no such id!")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.checkpoint_id"
    assert harness.backend.count("parley_messages", "kind = 'rewind'") == 0


async def test_a_rewind_supersedes_pending_interrupts_and_asks_the_targets_again(harness: AppHarness) -> None:
    first = (await harness.chat(message="hello")).json()
    sid = first["session_id"]
    asked = (await harness.chat(message=ORDER_MUGS, session_id=sid)).json()
    assert asked["status"] == "interrupted"
    [question] = asked["interrupt"]
    history = await _history(harness, sid, limit=200)
    paused_at = _end_of(history, asked["message_id"])

    # Back to before the question: the session waits on nothing, and the old question cannot be answered.
    back = (await _rewind(harness, sid, _end_of(history, first["message_id"]))).json()
    assert back["status"] == "completed"
    session = (await harness.client.get(f"/v1/sessions/{sid}", headers=ALICE)).json()
    assert (session["status"], session["pending_interrupts"]) == ("idle", [])
    stale = await harness.client.post(
        f"/v1/sessions/{sid}/resume",
        json={"user_id": "alice", "interrupt_id": question["id"], "value": {"decision": "approve"}},
    )
    assert stale.status_code == 409

    # Forward to the paused checkpoint: the question is pending again (asked anew), and answering it works.
    forward = (await _rewind(harness, sid, paused_at)).json()
    assert forward["status"] == "interrupted", forward
    [again] = forward["interrupt"]
    assert again["value"]["action"] == "place_order"
    session = (await harness.client.get(f"/v1/sessions/{sid}", headers=ALICE)).json()
    assert session["status"] == "interrupted"
    assert [i["id"] for i in session["pending_interrupts"]] == [again["id"]]
    done = await harness.client.post(
        f"/v1/sessions/{sid}/resume",
        json={"user_id": "alice", "interrupt_id": again["id"], "value": {"decision": "approve"}},
    )
    assert done.json()["status"] == "completed", done.json()
    assert harness.backend.count("parley_orders") == 1
