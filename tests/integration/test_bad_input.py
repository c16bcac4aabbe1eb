"""Bad input gets problem+json naming the field at fault, and stores nothing."""

from __future__ import annotations

from typing import Any

import pytest

from parley.api.app import create_app
from parley.settings import Settings
from tests.conftest import AppHarness


def _stored_rows(harness: AppHarness) -> tuple[int, ...]:
    tables = ("parley_sessions", "parley_messages", "parley_transcript", "parley_message_events")
    return tuple(harness.backend.count(table) for table in tables)


def _assert_problem(response: Any, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["type"].startswith("/problems/")
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]], problem
    return problem


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": "hi"}, "body.user_id"),
        ({"user_id": "", "message": "hi"}, "body.user_id"),
        ({"user_id": "has space", "message": "hi"}, "body.user_id"),
        ({"user_id": 42, "message": "hi"}, "body.user_id"),
        ({"user_id": "alice"}, "body.message"),
        ({"user_id": "alice", "message": ""}, "body.message"),
        ({"user_id": "alice", "message": "   \n "}, "body.message"),
        ({"user_id": "alice", "message": ["a list"]}, "body.message"),
        ({"user_id": "alice", "message": "hi", "wait": -1}, "body.wait"),
        ({"user_id": "alice", "message": "hi", "wait": "5"}, "body.wait"),
        ({"user_id": "alice", "message": "hi", "wait": 10_000}, "body.wait"),
        ({"user_id": "alice", "message": "hi", "session_id": ""}, "body.session_id"),
        ({"user_id": "alice", "message": "hi", "colour": "blue"}, "body.colour"),
        # No backend keeps NUL in text (PostgreSQL refuses it): refused at the door, on every backend alike.
        ({"user_id": "alice", "message": "a\u0000b"}, "body.message"),
        ({"user_id": "alice", "message": "hi", "session_id": "s\u0000"}, "body.session_id"),
    ],
)
async def test_invalid_fields_are_named(harness: AppHarness, body: dict[str, Any], field: str) -> None:
    response = await harness.client.post("/v1/chat", json=body)
    _assert_problem(response, 422, field)
    assert _stored_rows(harness) == (0, 0, 0, 0)


async def test_oversize_message_is_refused(harness_factory: Any, make_settings: Any) -> None:
    h = await harness_factory(make_settings(max_message_chars=10))
    response = await h.chat(message="x" * 11)
    problem = _assert_problem(response, 422, "body.message")
    assert "10" in problem["detail"]
    assert _stored_rows(h) == (0, 0, 0, 0)


async def test_oversize_body_is_413(harness_factory: Any, make_settings: Any) -> None:
    h = await harness_factory(make_settings(max_body_bytes=2048))
    response = await h.chat(message="x" * 5000)
    _assert_problem(response, 413, None)
    assert _stored_rows(h) == (0, 0, 0, 0)


async def test_oversize_chunked_body_is_413(harness_factory: Any, make_settings: Any) -> None:
    h = await harness_factory(make_settings(max_body_bytes=2048))

    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"user_id": "alice", "message": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    response = await h.client.post("/v1/chat", content=chunks(), headers={"Content-Type": "application/json"})
    _assert_problem(response, 413, None)
    assert _stored_rows(h) == (0, 0, 0, 0)


async def test_small_chunked_body_is_accepted(harness: AppHarness) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"user_id": "alice", '
        yield b'"message": "chunked"}'

    response = await harness.client.post(
        "/v1/chat", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["reply"] == "Echo: chunked"


_NESTED = b"[" * 1000 + b"]" * 1000
_MALFORMED = {
    "empty": b"",
    "not-utf8": b'{"user_id": "alice", "message": "caf\xe9"}',
    "utf16": '{"user_id": "alice", "message": "hi"}'.encode("utf-16"),
    "deep-nesting": _NESTED,
    "deep-nesting-in-a-field": b'{"user_id": "alice", "message": "hi", "value": ' + _NESTED + b"}",
    "huge-number": b'{"user_id": "alice", "message": "hi", "wait": ' + b"1" * 5000 + b"}",
    "number-out-of-range": b'{"user_id": "alice", "message": "hi", "wait": 1e400}',
    "nan": b'{"user_id": "alice", "message": "hi", "wait": NaN}',
    "raw-nul": b'{"user_id": "alice", "message": "a\x00b"}',
    "trailing-garbage": b'{"user_id": "alice", "message": "hi"} trailing',
    "truncated": b'{"user_id": "alice", "message": ',
    "bom": b'\xef\xbb\xbf{"user_id": "alice", "message": "hi"}',
}


def _body_operations() -> list[str]:
    """Every operation that reads a JSON body, as the OpenAPI document lists them — but the session import,
    which reads its body as a stream, a part at a time, and answers a document that is not JSON with a
    ``422`` naming where it broke, as any other fault of the document (tests/integration/test_transfer.py)."""
    schema = create_app(Settings(model="scripted")).openapi()
    return [
        path.replace("{session_id}", "some-session")
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method == "post" and "requestBody" in operation and path != "/v1/sessions/import"
    ]


@pytest.mark.parametrize("path", _body_operations())
@pytest.mark.parametrize("case", sorted(_MALFORMED))
async def test_anything_that_is_not_json_is_400_malformed_json(
    harness: AppHarness, path: str, case: str
) -> None:
    response = await harness.client.post(
        path, content=_MALFORMED[case], headers={"Content-Type": "application/json"}
    )
    problem = _assert_problem(response, 400, None)
    assert problem["type"] == "/problems/malformed-json"
    assert problem["detail"].startswith("The body ")
    assert _stored_rows(harness) == (0, 0, 0, 0)


def test_every_body_operation_is_covered() -> None:
    assert sorted(_body_operations()) == [
        "/v1/chat",
        "/v1/sessions/some-session/resume",
        "/v1/sessions/some-session/rewind",
    ]


async def test_well_formed_json_that_fails_validation_stays_422(harness: AppHarness) -> None:
    response = await harness.client.post(
        "/v1/chat",
        content=b'{"user_id": "alice", "message": 5}',
        headers={"Content-Type": "application/json"},
    )
    _assert_problem(response, 422, "body.message")


async def test_a_body_not_declared_as_json_is_415_even_when_malformed(harness: AppHarness) -> None:
    response = await harness.client.post("/v1/chat", content=b"\xff{", headers={"Content-Type": "text/plain"})
    _assert_problem(response, 415, "header.content-type")


async def test_a_json_array_body_is_422(harness: AppHarness) -> None:
    response = await harness.client.post("/v1/chat", json=["user_id", "alice"])
    _assert_problem(response, 422, "body")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_wrong_content_type_is_415(harness: AppHarness, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await harness.client.post(
        "/v1/chat", content=b'{"user_id": "alice", "message": "hi"}', headers=headers
    )
    _assert_problem(response, 415, "header.content-type")
    assert _stored_rows(harness) == (0, 0, 0, 0)


async def test_unknown_session_is_404_and_creates_nothing(harness: AppHarness) -> None:
    response = await harness.chat(message="hi", session_id="does-not-exist")
    problem = _assert_problem(response, 404, None)
    assert "does-not-exist" in problem["detail"]
    assert _stored_rows(harness) == (0, 0, 0, 0)


@pytest.mark.parametrize("path", ["/v1/messages/x", "/v1/sessions/x", "/v1/sessions/x/messages"])
async def test_missing_user_header_is_422_naming_it(harness: AppHarness, path: str) -> None:
    _assert_problem(await harness.client.get(path), 422, "header.X-User-Id")


async def test_bad_transcript_query_is_422(harness: AppHarness) -> None:
    sid = (await harness.chat(message="hi")).json()["session_id"]
    headers = {"X-User-Id": "alice"}
    _assert_problem(
        await harness.client.get(f"/v1/sessions/{sid}/messages?limit=0", headers=headers), 422, "query.limit"
    )
    _assert_problem(
        await harness.client.get(f"/v1/sessions/{sid}/messages?cursor=zzz", headers=headers),
        422,
        "query.cursor",
    )


async def test_unknown_route_and_method_are_problems(harness: AppHarness) -> None:
    _assert_problem(await harness.client.get("/v1/nothing"), 404, None)
    _assert_problem(await harness.client.get("/v1/chat"), 405, None)


@pytest.mark.parametrize("age", ["1e11", "1e308", "inf", "-inf", "nan", "Infinity", "315576001"])
async def test_min_age_out_of_range_is_422_not_500(
    harness_factory: Any, make_settings: Any, age: str
) -> None:
    h = await harness_factory(make_settings(operator_header_enabled=True))
    response = await h.client.get(
        "/v1/interrupts", params={"min_age_seconds": age}, headers={"X-Role": "operator"}
    )
    _assert_problem(response, 422, "query.min_age_seconds")


async def test_min_age_of_ten_years_is_accepted(harness_factory: Any, make_settings: Any) -> None:
    h = await harness_factory(make_settings(operator_header_enabled=True))
    response = await h.client.get(
        "/v1/interrupts", params={"min_age_seconds": "315576000"}, headers={"X-Role": "operator"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"items": []}


@pytest.mark.parametrize("position", [10**18, 2**63, 10**30])
async def test_cursor_beyond_storage_integers_is_422_not_500(harness: AppHarness, position: int) -> None:
    sid = (await harness.chat(message="hi")).json()["session_id"]
    response = await harness.client.get(
        f"/v1/sessions/{sid}/messages", params={"cursor": str(position)}, headers={"X-User-Id": "alice"}
    )
    _assert_problem(response, 422, "query.cursor")


async def test_any_cursor_of_the_documented_form_is_a_page(harness: AppHarness) -> None:
    sid = (await harness.chat(message="hi")).json()["session_id"]
    for cursor, expected in [
        ("0", ["hi", "Echo: hi"]),
        ("999999999999999999", []),
        ("000", ["hi", "Echo: hi"]),
    ]:
        response = await harness.client.get(
            f"/v1/sessions/{sid}/messages", params={"cursor": cursor}, headers={"X-User-Id": "alice"}
        )
        assert response.status_code == 200, response.text
        assert [item["content"] for item in response.json()["items"]] == expected


async def test_wait_over_the_maximum_is_422_even_with_prefer_respond_async(harness: AppHarness) -> None:
    response = await harness.client.post(
        "/v1/chat",
        json={"user_id": "alice", "message": "hi", "wait": 1e300},
        headers={"Prefer": "respond-async"},
    )
    _assert_problem(response, 422, "body.wait")
    assert _stored_rows(harness) == (0, 0, 0, 0)


async def test_an_interrupt_id_with_a_nul_is_refused_and_stores_nothing(harness: AppHarness) -> None:
    session_id = (await harness.chat(message="hello")).json()["session_id"]
    before = _stored_rows(harness)
    response = await harness.client.post(
        f"/v1/sessions/{session_id}/resume",
        json={"user_id": "alice", "interrupt_id": "i\u0000", "value": "yes"},
    )
    _assert_problem(response, 422, "body.interrupt_id")
    assert _stored_rows(harness) == before
