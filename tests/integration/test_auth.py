"""API keys over HTTP: the 401 and 403 problems, a user key bound to its user, X-Role granting nothing with
keys, who answered an interrupt (``GET /v1/interrupts/{id}``), with keys and with auth off, and the
principal left for middleware in ``request.state``."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from parley.core.api_keys import create_key
from parley.core.auth import CallerRole
from tests.conftest import AppHarness

ORDER_MUGS = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'
REVIEWED = "[[reply:Take a dosage of 400 mg twice a day.]] how much?"


async def _keyed(
    harness_factory: Any, make_settings: Any, **settings: Any
) -> tuple[AppHarness, dict[str, Any]]:
    h: AppHarness = await harness_factory(make_settings(auth="keys", key_cache_seconds=0, **settings))
    keys = {}
    for role, user in (("service", None), ("user", "alice"), ("operator", None), ("admin", None)):
        made = await create_key(
            store=h.services.store, role=CallerRole(role), user_id=user, name=f"{role} one"
        )
        keys[role] = {"Authorization": f"Bearer {made.token}", "key_id": made.record.key_id}
    return h, keys


def _auth(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": key["Authorization"]}


@pytest.mark.inprocess_only
async def test_no_key_or_a_bad_one_is_401_with_a_bearer_challenge(
    harness_factory: Any, make_settings: Any
) -> None:
    h, keys = await _keyed(harness_factory, make_settings)
    missing = await h.client.get("/v1/sessions", headers={"X-User-Id": "alice"})
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="parley"'
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["type"] == "/problems/unauthorized"
    basic = await h.client.get("/v1/sessions", headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert (basic.status_code, basic.headers["WWW-Authenticate"]) == (401, 'Bearer realm="parley"')
    for token in ("nonsense", keys["admin"]["Authorization"].removeprefix("Bearer ")[:-1] + "."):
        bad = await h.client.get("/v1/sessions", headers={"Authorization": f"Bearer {token}"})
        assert bad.status_code == 401
        assert bad.headers["WWW-Authenticate"] == 'Bearer realm="parley", error="invalid_token"'
        assert bad.json()["type"] == "/problems/invalid-token"
    # A 401 comes before anything of the request is looked at: here a body that is not even valid.
    early = await h.client.post("/v1/chat", json={"message": ""})
    assert early.status_code == 401
    assert (await h.client.get("/healthz")).status_code == 200


@pytest.mark.inprocess_only
async def test_a_role_that_may_not_is_403_naming_the_roles_that_may(
    harness_factory: Any, make_settings: Any
) -> None:
    h, keys = await _keyed(harness_factory, make_settings)
    refused = await h.client.post(
        "/v1/chat", json={"user_id": "alice", "message": "hi"}, headers=_auth(keys["operator"])
    )
    assert refused.status_code == 403
    problem = refused.json()
    assert problem["type"] == "/problems/role-forbidden"
    assert problem["required_roles"] == ["admin", "service", "user"]
    queue = await h.client.get("/v1/interrupts", headers=_auth(keys["service"]))
    assert (queue.status_code, queue.json()["required_roles"]) == (403, ["admin", "operator"])


@pytest.mark.inprocess_only
async def test_a_user_key_acts_for_its_own_user_only(harness_factory: Any, make_settings: Any) -> None:
    h, keys = await _keyed(harness_factory, make_settings)
    alice = _auth(keys["user"])
    chat = await h.client.post("/v1/chat", json={"message": "hi", "wait": 5}, headers=alice)
    assert chat.status_code == 200, chat.text
    sid = chat.json()["session_id"]
    session = await h.client.get(f"/v1/sessions/{sid}", headers=alice)
    assert session.json()["user_id"] == "alice"
    as_bob = await h.client.post("/v1/chat", json={"user_id": "bob", "message": "hi"}, headers=alice)
    assert as_bob.status_code == 403
    assert as_bob.json()["type"] == "/problems/role-forbidden"
    assert (
        await h.client.get(f"/v1/sessions/{sid}", headers={**alice, "X-User-Id": "bob"})
    ).status_code == 403
    assert (
        await h.client.get(f"/v1/sessions/{sid}", headers={**alice, "X-User-Id": "alice"})
    ).status_code == 200
    assert h.backend.count("parley_messages") == 1  # the refused chat stored nothing
    # A service key must still name the user it acts for: the same 422 as with auth off.
    unnamed = await h.client.post("/v1/chat", json={"message": "hi"}, headers=_auth(keys["service"]))
    assert unnamed.status_code == 422
    assert unnamed.json()["errors"][0]["field"] == "body.user_id"


@pytest.mark.inprocess_only
async def test_x_role_grants_nothing_with_keys(harness_factory: Any, make_settings: Any) -> None:
    h, keys = await _keyed(harness_factory, make_settings, operator_header_enabled=True)
    chat = await h.client.post(
        "/v1/chat", json={"user_id": "bob", "message": "hi", "wait": 5}, headers=_auth(keys["admin"])
    )
    sid = chat.json()["session_id"]
    as_operator = {**_auth(keys["service"]), "X-User-Id": "alice", "X-Role": "operator"}
    assert (await h.client.get(f"/v1/sessions/{sid}", headers=as_operator)).status_code == 404
    assert (await h.client.get("/v1/interrupts", headers=as_operator)).status_code == 403


@pytest.mark.inprocess_only
async def test_who_answered_is_the_key_never_the_body(harness_factory: Any, make_settings: Any) -> None:
    h, keys = await _keyed(harness_factory, make_settings)
    alice = _auth(keys["user"])
    body = (await h.client.post("/v1/chat", json={"message": REVIEWED, "wait": 5}, headers=alice)).json()
    [review] = body["interrupt"]
    sid = body["session_id"]
    before = (await h.client.get(f"/v1/interrupts/{review['id']}", headers=alice)).json()
    assert (before["status"], before["answered_at"], before["answered_by"]) == ("pending", None, None)
    assert "draft" not in before["value"]  # the user's view of a review: its notice, not the draft
    operator = _auth(keys["operator"])
    assert "draft" in (await h.client.get(f"/v1/interrupts/{review['id']}", headers=operator)).json()["value"]
    answered = await h.client.post(
        f"/v1/sessions/{sid}/resume",
        json={
            "user_id": "mallory",
            "interrupt_id": review["id"],
            "value": {"decision": "approve"},
            "wait": 5,
        },
        headers=operator,
    )
    assert answered.status_code == 200, answered.text
    after = (await h.client.get(f"/v1/interrupts/{review['id']}", headers=alice)).json()
    assert after["status"] == "answered"
    assert after["answered_at"] is not None
    assert after["answered_by"] == {
        "authenticated": True,
        "role": "operator",
        "key_id": keys["operator"]["key_id"],
        "key_name": "operator one",
        "user_id": None,
        "message_id": answered.json()["message_id"],
    }
    assert "mallory" not in str(h.backend.query("SELECT * FROM parley_interrupts"))
    # Another user's interrupt is not found, as their sessions are not.
    bob = await create_key(store=h.services.store, role=CallerRole.USER, user_id="bob", name=None)
    other = await h.client.get(
        f"/v1/interrupts/{review['id']}", headers={"Authorization": f"Bearer {bob.token}"}
    )
    assert other.status_code == 404


@pytest.mark.inprocess_only
async def test_an_operator_key_answers_reviews_not_confirmations(
    harness_factory: Any, make_settings: Any
) -> None:
    h, keys = await _keyed(harness_factory, make_settings)
    body = (
        await h.client.post("/v1/chat", json={"message": ORDER_MUGS, "wait": 5}, headers=_auth(keys["user"]))
    ).json()
    [confirm] = body["interrupt"]
    refused = await h.client.post(
        f"/v1/sessions/{body['session_id']}/resume",
        json={"interrupt_id": confirm["id"], "value": {"decision": "approve"}},
        headers=_auth(keys["operator"]),
    )
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/role-forbidden"
    assert h.backend.count("parley_interrupts", "status = 'pending'") == 1


async def test_with_auth_off_the_answer_records_the_claimed_user_as_unauthenticated(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings())
    body = (await h.chat(message=ORDER_MUGS, wait=5)).json()
    [confirm] = body["interrupt"]
    answered = await h.client.post(
        f"/v1/sessions/{body['session_id']}/resume",
        json={"user_id": "alice", "interrupt_id": confirm["id"], "value": {"decision": "approve"}, "wait": 5},
    )
    assert answered.status_code == 200, answered.text
    seen = await h.client.get(f"/v1/interrupts/{confirm['id']}", headers={"X-User-Id": "alice"})
    assert seen.json()["answered_by"] == {
        "authenticated": False,
        "role": "user",
        "key_id": None,
        "key_name": None,
        "user_id": "alice",
        "message_id": answered.json()["message_id"],
    }
    assert (
        await h.client.get(f"/v1/interrupts/{confirm['id']}", headers={"X-User-Id": "bob"})
    ).status_code == 404


@pytest.mark.inprocess_only
async def test_the_principal_is_left_in_request_state(harness_factory: Any, make_settings: Any) -> None:
    settings = make_settings(auth="keys", key_cache_seconds=0)
    seen: list[Any] = []
    from parley.api.app import create_app

    app = create_app(settings)

    def _witness(inner: Any) -> Any:
        async def middleware(scope: Any, receive: Any, send: Any) -> None:
            await inner(scope, receive, send)
            if scope["type"] == "http":
                seen.append(scope.get("state", {}).get("principal"))

        return middleware

    app.add_middleware(_witness)  # type: ignore[arg-type]
    import httpx

    async with app.router.lifespan_context(app):
        made = await create_key(
            store=app.state.services.store, role=CallerRole.OPERATOR, user_id=None, name="desk"
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://parley") as client:
            response = await client.get("/v1/interrupts", headers={"Authorization": f"Bearer {made.token}"})
    assert response.status_code == 200
    [principal] = seen
    assert (principal.key_id, principal.key_name, principal.role) == (
        made.record.key_id,
        "desk",
        CallerRole.OPERATOR,
    )


@pytest.mark.inprocess_only
async def test_auth_off_is_a_loud_warning_at_start(
    harness_factory: Any, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="parley.api.app")
    await harness_factory(make_settings())
    assert any("AUTHENTICATION IS OFF" in r.getMessage() for r in caplog.records)


@pytest.mark.inprocess_only
async def test_with_keys_the_operator_header_setting_is_said_to_be_ignored(
    harness_factory: Any, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="parley.api.app")
    await harness_factory(make_settings(auth="keys", operator_header_enabled=True))
    messages = [r.getMessage() for r in caplog.records]
    assert not any("AUTHENTICATION IS OFF" in m for m in messages)
    assert any("PARLEY_OPERATOR_HEADER_ENABLED is ignored" in m for m in messages)
