"""One turn at a time per session, in arrival order; different sessions run concurrently."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.conftest import AppHarness
from tests.integration.test_chat_api import poll_until_terminal


async def test_many_messages_into_one_session_run_one_at_a_time_in_arrival_order(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graph="tests.graphs.counting:graph"))
    sid = (await h.chat(message="start")).json()["session_id"]
    sent = await asyncio.gather(
        *(h.chat(message=f"m{i} [[sleep:0.01]]", session_id=sid, wait=0) for i in range(24))
    )
    assert all(r.status_code == 202 for r in sent)
    for r in sent:
        await poll_until_terminal(h.client, r.json()["message_id"])

    items = (
        await h.client.get(
            f"/v1/sessions/{sid}/messages", params={"limit": 200}, headers={"X-User-Id": "alice"}
        )
    ).json()["items"]
    assert len(items) == 2 * 25
    # The transcript alternates user/assistant and each reply answers the message right before it,
    # having seen exactly the messages before it: turn k ran k-th, alone.
    for k in range(25):
        user, assistant = items[2 * k], items[2 * k + 1]
        assert user["role"] == "user"
        assert assistant["role"] == "assistant"
        assert assistant["message_id"] == user["message_id"]
        report = json.loads(assistant["content"])
        assert report["last"] == user["content"]
        assert report["seen"] == k + 1
        assert report["max_session"] == 1
    # Arrival order: the user lines are in the order the server accepted the messages.
    accepted = sorted((r.json() for r in sent), key=lambda b: b["created_at"])
    assert [i["message_id"] for i in items[2::2]] == [b["message_id"] for b in accepted]


async def test_different_sessions_run_concurrently(harness_factory: Any, make_settings: Any) -> None:
    h: AppHarness = await harness_factory(make_settings(graph="tests.graphs.counting:graph"))
    responses = await asyncio.gather(
        *(h.chat(user_id=f"user{i}", message="[[sleep:0.3]] hi") for i in range(4))
    )
    reports = [json.loads(r.json()["reply"]) for r in responses]
    assert max(r["max_global"] for r in reports) >= 2
    assert all(r["max_session"] == 1 for r in reports)
