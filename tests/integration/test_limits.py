"""Limits on what one caller may ask of the service: unfinished messages per session (every backend), the
per-caller rate limit counted in this process's memory, and CORS (off unless origins are configured)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from parley.core.api_keys import create_key
from parley.core.auth import CallerRole
from tests.conftest import AppHarness
from tests.integration.test_chat_api import poll_until_terminal

ALICE = {"X-User-Id": "alice"}


async def test_a_session_holding_its_limit_of_unfinished_messages_refuses_another_and_stores_nothing(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(max_queued_per_session=3))
    held = (await h.chat(message="[[sleep:60]] hold the session", wait=0)).json()
    sid = held["session_id"]
    queued = [(await h.chat(message=f"queued {i}", session_id=sid, wait=0)).json() for i in range(2)]
    before = (await h.client.get(f"/v1/sessions/{sid}", headers=ALICE)).json()["message_count"]

    refused = await h.chat(message="one too many", session_id=sid, wait=0)

    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["Retry-After"] == "5"
    problem = refused.json()
    assert problem["type"] == "/problems/queue-full"
    assert problem["limit"] == 3
    assert problem["retry_after"] == 5
    after = (await h.client.get(f"/v1/sessions/{sid}", headers=ALICE)).json()["message_count"]
    assert after == before == 3
    transcript = (await h.client.get(f"/v1/sessions/{sid}/messages", headers=ALICE)).json()["items"]
    assert "one too many" not in [item["content"] for item in transcript]
    # Other sessions are not held back by this one.
    assert (await h.chat(message="elsewhere", wait=0)).status_code == 202

    # Once messages have ended there is room again: the queue drains, and the session takes more.
    cancel = await h.client.post(f"/v1/messages/{held['message_id']}/cancel", headers=ALICE)
    assert cancel.status_code == 200, cancel.text
    for message in queued:
        assert (await poll_until_terminal(h.client, message["message_id"]))["status"] == "completed"
    room = await h.chat(message="room again", session_id=sid, wait=5)
    assert room.status_code == 200
    assert room.json()["reply"] == "Echo: room again"


async def test_an_idempotent_repeat_is_not_refused_by_a_full_session(
    harness_factory: Any, make_settings: Any
) -> None:
    """A client repeating a POST whose response it lost gets its message back, even from a full session:
    the repeat adds nothing."""
    h: AppHarness = await harness_factory(make_settings(max_queued_per_session=2))
    held = (await h.chat(message="[[sleep:60]] hold", wait=0)).json()
    sid = held["session_id"]
    body = {"user_id": "alice", "message": "kept", "session_id": sid, "wait": 0}
    first = await h.client.post("/v1/chat", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 202
    repeat = await h.client.post("/v1/chat", json=body, headers={"Idempotency-Key": "k1"})
    assert repeat.status_code == 202
    assert repeat.json()["message_id"] == first.json()["message_id"]
    assert (await h.chat(message="new", session_id=sid, wait=0)).status_code == 429
    # (Not left to the shutdown, which would give the sleeping turn its whole grace period.)
    assert (
        await h.client.post(f"/v1/messages/{held['message_id']}/cancel", headers=ALICE)
    ).status_code == 200


def _client_at(h: AppHarness, address: str) -> httpx.AsyncClient:
    """A client of the same app whose requests come from ``address``."""
    transport = httpx.ASGITransport(app=h.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://parley")


async def test_the_rate_limit_counts_each_address_on_its_own_in_memory(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(rate_limit="3/minute"))
    async with _client_at(h, "127.0.0.2") as first, _client_at(h, "127.0.0.3") as second:
        statuses = [(await first.get("/v1/sessions", headers=ALICE)).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        refused = await first.get("/v1/sessions", headers=ALICE)
        assert refused.json()["type"] == "/problems/rate-limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert (await second.get("/v1/sessions", headers=ALICE)).status_code == 200
        # Health checks and the page are never counted.
        assert {(await first.get("/healthz")).status_code for _ in range(5)} == {200}
        assert (await first.get("/")).status_code == 200


@pytest.mark.inprocess_only
async def test_with_keys_the_rate_limit_counts_each_key_and_failed_authentications_by_address(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(
        make_settings(auth="keys", key_cache_seconds=0, rate_limit="2/minute")
    )
    first, second = [
        (await create_key(store=h.services.store, role=CallerRole.USER, user_id="alice", name=n)).token
        for n in ("phone", "laptop")
    ]
    async with _client_at(h, "127.0.0.4") as client:
        as_first = {"Authorization": f"Bearer {first}"}
        assert [(await client.get("/v1/sessions", headers=as_first)).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        # Another key from the same address has a count of its own.
        assert (
            await client.get("/v1/sessions", headers={"Authorization": f"Bearer {second}"})
        ).status_code == 200
        # Bad keys are counted against the address: two 401s, then 429.
        bad = {"Authorization": "Bearer parley_000000000000_nope"}
        assert [(await client.get("/v1/sessions", headers=bad)).status_code for _ in range(3)] == [
            401,
            401,
            429,
        ]


async def test_without_a_rate_limit_nothing_is_counted(harness: AppHarness) -> None:
    statuses = {(await harness.client.get("/v1/sessions", headers=ALICE)).status_code for _ in range(50)}
    assert statuses == {200}


async def test_cors_is_off_unless_origins_are_configured(harness: AppHarness) -> None:
    origin = {"Origin": "https://chat.example"}
    response = await harness.client.get("/v1/sessions", headers={**ALICE, **origin})
    assert response.status_code == 200
    assert not any(name.lower().startswith("access-control-") for name in response.headers)
    preflight = await harness.client.options(
        "/v1/chat", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_cors_answers_the_configured_origins_only(harness_factory: Any, make_settings: Any) -> None:
    h: AppHarness = await harness_factory(make_settings(cors_origins="https://chat.example"))
    preflight = await h.client.options(
        "/v1/chat",
        headers={
            "Origin": "https://chat.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization, idempotency-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://chat.example"
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "authorization", "idempotency-key"} <= allowed

    sent = await h.client.post(
        "/v1/chat",
        json={"user_id": "alice", "message": "hi", "wait": 0},
        headers={"Origin": "https://chat.example"},
    )
    assert sent.headers["access-control-allow-origin"] == "https://chat.example"
    exposed = {h.strip().lower() for h in sent.headers["access-control-expose-headers"].split(",")}
    assert {"location", "x-message-id", "retry-after"} <= exposed

    stranger = await h.client.options(
        "/v1/chat", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert stranger.status_code == 400
    assert "access-control-allow-origin" not in stranger.headers
