"""A resume ``value`` the turn could not carry is refused at the door (422 naming ``body.value``), with
nothing stored and the interrupt still pending."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import AppHarness

ORDER = '[[tool:place_order|{"item": "mug", "quantity": 1}]] a mug'


def _nested(levels: int) -> Any:
    value: Any = "yes"
    for _ in range(levels):
        value = [value]
    return value


def _counts(h: AppHarness) -> tuple[int, int, int]:
    return (
        h.backend.count("parley_messages"),
        h.backend.count("parley_transcript"),
        h.backend.count("parley_interrupts", "status = 'pending'"),
    )


async def _resume(h: AppHarness, body: dict[str, Any], value: Any) -> httpx.Response:
    return await h.client.post(
        f"/v1/sessions/{body['session_id']}/resume",
        json={"user_id": "alice", "interrupt_id": body["interrupt"][0]["id"], "value": value},
    )


def _refused(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert [e["field"] for e in problem["errors"]] == ["body.value"]
    return problem


async def test_a_deeply_nested_value_is_refused_and_stores_nothing(harness: AppHarness) -> None:
    body = (await harness.chat(message=ORDER)).json()
    before = _counts(harness)
    assert before == (1, 1, 1)
    problem = _refused(await _resume(harness, body, _nested(255)))
    assert "32 levels" in problem["detail"]
    assert _refused(await _resume(harness, body, {"a": _nested(32)}))  # objects count as levels too
    assert _counts(harness) == before
    # At the limit the value is taken (an unreadable answer, so the question is asked again), and the
    # turn carries it through its checkpoints.
    at_limit = (await _resume(harness, body, _nested(32))).json()
    assert at_limit["status"] == "interrupted", at_limit
    assert "error" in at_limit["interrupt"][0]["value"]


async def test_an_oversize_value_is_refused_and_stores_nothing(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(max_value_bytes=1000))
    body = (await h.chat(message=ORDER)).json()
    before = _counts(h)
    problem = _refused(await _resume(h, body, {"reason": "x" * 1000}))
    assert "1000 bytes" in problem["detail"]
    assert _counts(h) == before
    taken = (await _resume(h, body, {"decision": "reject", "reason": "x" * 900})).json()
    assert taken["status"] == "completed"


async def test_the_default_size_limit_refuses_a_value_over_64_kib(harness: AppHarness) -> None:
    body = (await harness.chat(message=ORDER)).json()
    before = _counts(harness)
    _refused(await _resume(harness, body, "y" * (64 * 1024 + 1)))
    assert _counts(harness) == before
