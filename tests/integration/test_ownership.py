"""A session belongs to the user who created it; to anyone else it does not exist."""

from __future__ import annotations

from tests.conftest import AppHarness


async def test_another_user_gets_404_on_every_route(harness: AppHarness) -> None:
    body = (await harness.chat(user_id="alice", message="secret")).json()
    sid, mid = body["session_id"], body["message_id"]
    mallory = {"X-User-Id": "mallory"}
    responses = {
        "get message": await harness.client.get(f"/v1/messages/{mid}", headers=mallory),
        "get session": await harness.client.get(f"/v1/sessions/{sid}", headers=mallory),
        "transcript": await harness.client.get(f"/v1/sessions/{sid}/messages", headers=mallory),
        "delete": await harness.client.delete(f"/v1/sessions/{sid}", headers=mallory),
        "chat": await harness.chat(user_id="mallory", message="hi", session_id=sid),
    }
    for route, response in responses.items():
        assert response.status_code == 404, route
        assert "secret" not in response.text
    # Nothing mallory did touched alice's session.
    session = (await harness.client.get(f"/v1/sessions/{sid}", headers={"X-User-Id": "alice"})).json()
    assert session["message_count"] == 1


async def test_a_foreign_404_reads_like_a_missing_one(harness: AppHarness) -> None:
    sid = (await harness.chat(user_id="alice", message="hi")).json()["session_id"]
    foreign = await harness.client.get(f"/v1/sessions/{sid}", headers={"X-User-Id": "mallory"})
    missing = await harness.client.get("/v1/sessions/nope", headers={"X-User-Id": "mallory"})
    assert foreign.json()["type"] == missing.json()["type"]
    assert foreign.json()["title"] == missing.json()["title"]
