from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from parley.models.scripted import ECHO_PREFIX
from tests.conftest import AppHarness

ALICE = {"X-User-Id": "alice"}


async def poll_until_terminal(
    client: httpx.AsyncClient, message_id: str, *, user: str = "alice", deadline: float = 10.0
) -> dict[str, Any]:
    end = time.monotonic() + deadline
    while True:
        response = await client.get(f"/v1/messages/{message_id}", headers={"X-User-Id": user})
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        if body["status"] in ("completed", "interrupted", "failed", "cancelled"):
            return body
        assert time.monotonic() < end, f"message {message_id} still {body['status']}"
        await asyncio.sleep(0.02)


async def test_a_message_is_answered_inline(harness: AppHarness) -> None:
    response = await harness.chat(message="hello")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    assert body["reply"] == ECHO_PREFIX + "hello"
    assert body["attempts"] == 1
    assert body["session_id"]
    assert set(body) == {
        "message_id",
        "session_id",
        "kind",
        "status",
        "reply",
        "interrupt",
        "error",
        "created_at",
        "updated_at",
        "attempts",
        "usage",
    }


async def test_the_session_id_continues_the_conversation(harness: AppHarness) -> None:
    first = (await harness.chat(message="one")).json()
    second = (await harness.chat(message="two", session_id=first["session_id"])).json()
    assert second["session_id"] == first["session_id"]
    transcript = (
        await harness.client.get(
            f"/v1/sessions/{first['session_id']}/messages", headers={"X-User-Id": "alice"}
        )
    ).json()
    assert [(i["role"], i["content"]) for i in transcript["items"]] == [
        ("user", "one"),
        ("assistant", ECHO_PREFIX + "one"),
        ("user", "two"),
        ("assistant", ECHO_PREFIX + "two"),
    ]
    assert transcript["next_cursor"] is None


async def test_a_slow_turn_is_acknowledged_with_202_and_keeps_running(harness: AppHarness) -> None:
    response = await harness.chat(message="[[sleep:0.5]] slow", wait=0.05)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] in ("queued", "running")
    assert response.headers["location"] == f"/v1/messages/{body['message_id']}"
    final = await poll_until_terminal(harness.client, body["message_id"])
    assert final["status"] == "completed"
    assert final["reply"] == ECHO_PREFIX + "slow"


async def test_prefer_respond_async_means_wait_zero(harness: AppHarness) -> None:
    response = await harness.client.post(
        "/v1/chat",
        json={"user_id": "alice", "message": "hi", "wait": 30},
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 202
    assert response.headers["preference-applied"] == "respond-async"
    assert response.json()["status"] == "queued"
    assert (await poll_until_terminal(harness.client, response.json()["message_id"]))["status"] == "completed"


async def test_wait_zero_always_acknowledges(harness: AppHarness) -> None:
    response = await harness.chat(message="hi", wait=0)
    assert response.status_code == 202
    assert "preference-applied" not in response.headers


async def test_default_wait_comes_from_settings(harness_factory: Any, make_settings: Any) -> None:
    h = await harness_factory(make_settings(default_wait=0))
    assert (await h.chat(message="hi")).status_code == 202


async def test_a_failing_model_fails_the_message_safely_and_the_session_stays_usable(
    harness: AppHarness,
) -> None:
    failed = await harness.chat(message="[[fail]] boom")
    assert failed.status_code == 200
    body = failed.json()
    assert body["status"] == "failed"
    assert body["reply"] is None
    assert body["error"]["type"] == "turn_failed"
    assert "scripted model failure" not in body["error"]["detail"]  # no str(exc) of internals
    # Nor its class: the detail is a fixed text (the class is in the log).
    assert body["error"]["detail"] == "The turn failed; the session remains usable."
    session = (
        await harness.client.get(f"/v1/sessions/{body['session_id']}", headers={"X-User-Id": "alice"})
    ).json()
    assert session["status"] == "error"
    ok = (await harness.chat(message="again", session_id=body["session_id"])).json()
    assert ok["status"] == "completed"
    assert ok["reply"] == ECHO_PREFIX + "again"


async def test_busy_session_queues_behind_the_running_turn_by_default(harness: AppHarness) -> None:
    first = (await harness.chat(message="[[sleep:0.3]] first", wait=0)).json()
    second = await harness.chat(message="second", session_id=first["session_id"], wait=5)
    assert second.status_code == 200
    assert second.json()["reply"] == ECHO_PREFIX + "second"
    assert (await poll_until_terminal(harness.client, first["message_id"]))["status"] == "completed"


async def test_reject_policy_refuses_a_busy_session_with_409(
    harness_factory: Any, make_settings: Any
) -> None:
    h = await harness_factory(make_settings(busy_policy="reject"))
    first = (await h.chat(message="[[sleep:0.5]] first", wait=0)).json()
    refused = await h.chat(message="second", session_id=first["session_id"])
    assert refused.status_code == 409
    problem = refused.json()
    assert refused.headers["content-type"] == "application/problem+json"
    assert problem["type"] == "/problems/session-busy"
    assert problem["message_id"] == first["message_id"]
    await poll_until_terminal(h.client, first["message_id"])
    session = (
        await h.client.get(f"/v1/sessions/{first['session_id']}", headers={"X-User-Id": "alice"})
    ).json()
    assert session["message_count"] == 1


async def test_session_resource(harness: AppHarness) -> None:
    body = (await harness.chat(message="hi")).json()
    response = await harness.client.get(f"/v1/sessions/{body['session_id']}", headers={"X-User-Id": "alice"})
    assert response.status_code == 200
    session = response.json()
    assert session["status"] == "idle"
    assert session["message_count"] == 1
    assert session["pending_interrupts"] == []
    assert session["last_message_id"] == body["message_id"]
    assert session["user_id"] == "alice"


async def test_transcript_pagination_with_cursor(harness: AppHarness) -> None:
    sid = (await harness.chat(message="m0")).json()["session_id"]
    for i in range(1, 4):
        await harness.chat(message=f"m{i}", session_id=sid)
    contents: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (
            await harness.client.get(
                f"/v1/sessions/{sid}/messages", params=params, headers={"X-User-Id": "alice"}
            )
        ).json()
        pages += 1
        contents += [i["content"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert contents == [x for i in range(4) for x in (f"m{i}", ECHO_PREFIX + f"m{i}")]


async def test_delete_removes_the_session_and_its_checkpoints(harness: AppHarness) -> None:
    sid = (await harness.chat(message="hi")).json()["session_id"]
    config: Any = {"configurable": {"thread_id": sid}}
    assert await harness.services.checkpointer.aget_tuple(config) is not None
    await harness.services.journal.drain()
    assert harness.backend.count("parley_message_events") > 0
    response = await harness.client.delete(f"/v1/sessions/{sid}", headers={"X-User-Id": "alice"})
    assert response.status_code == 204
    assert await harness.services.checkpointer.aget_tuple(config) is None
    assert harness.backend.count("parley_message_events") == 0  # the turn's events went with it
    gone = await harness.client.get(f"/v1/sessions/{sid}", headers={"X-User-Id": "alice"})
    assert gone.status_code == 404
    again = await harness.client.delete(f"/v1/sessions/{sid}", headers={"X-User-Id": "alice"})
    assert again.status_code == 404


async def test_delete_refuses_while_a_turn_is_pending(harness: AppHarness) -> None:
    body = (await harness.chat(message="[[sleep:0.3]] hi", wait=0)).json()
    response = await harness.client.delete(
        f"/v1/sessions/{body['session_id']}", headers={"X-User-Id": "alice"}
    )
    assert response.status_code == 409
    await poll_until_terminal(harness.client, body["message_id"])
    response = await harness.client.delete(
        f"/v1/sessions/{body['session_id']}", headers={"X-User-Id": "alice"}
    )
    assert response.status_code == 204


async def test_reply_tokens_and_node_updates_are_published_as_the_turn_runs(harness: AppHarness) -> None:
    accepted = (await harness.chat(message="[[sleep:0.3]] stream these words please", wait=0)).json()
    events = []
    async with harness.services.bus.subscribe(accepted["message_id"]) as queue:
        while True:
            event = await asyncio.wait_for(queue.get(), 10)
            events.append(event)
            if event.kind == "done":
                break
    tokens = [e.data["text"] for e in events if e.kind == "token"]
    assert len(tokens) > 3
    assert "".join(tokens) == "Echo: stream these words please"
    assert all(e.data["node"] == "agent" for e in events if e.kind == "token")
    assert all(e.data["namespace"] == [] for e in events if e.kind == "token")  # the root graph spoke
    assert {"node": "agent", "namespace": []} in [e.data for e in events if e.kind == "update"]
    # In process the event carries the record; from a worker, only the status (the row has the rest).
    final = (await harness.client.get(f"/v1/messages/{accepted['message_id']}", headers=ALICE)).json()
    assert final["status"] == "completed"
    assert final["reply"] == "".join(tokens)


async def test_usage_is_recorded_on_the_message(harness: AppHarness) -> None:
    body = (await harness.chat(message="count my tokens")).json()
    usage = body["usage"]
    assert usage["model_calls"] == 1
    assert usage["model_errors"] == 0
    assert usage["output_tokens"] == len(["Echo:", "count", "my", "tokens"])
    assert usage["input_tokens"] > 0
    assert usage["model_seconds"] > 0
    assert usage["first_token_seconds"] is not None
    failed = (await harness.chat(message="[[flaky:1]] once more", session_id=body["session_id"])).json()
    assert failed["status"] == "completed"
    assert failed["usage"]["model_calls"] == 2
    assert failed["usage"]["model_errors"] == 1
