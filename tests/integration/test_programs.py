"""Kinds of program through the real app, on every backend: the Functional API's variants, a failed
entrypoint turn leaving no trace, and a graph that has no ``messages`` key."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import AppHarness

FUNCTIONAL = "fn=tests.graphs.functional:bot,sync=tests.graphs.functional:sync_bot"
PLAIN = "plain=tests.graphs.functional:plain_hosted"


async def _reply(h: AppHarness, message: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = (await h.chat(message=message, **fields)).json()
    return body


async def test_a_sync_entrypoint_without_previous_sees_only_its_turn(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graphs=FUNCTIONAL))
    first = await _reply(h, "one", graph="sync")
    assert first["reply"] == "sync: one"
    assert (await _reply(h, "two", session_id=first["session_id"]))["reply"] == "sync: two"


async def test_an_entrypoint_taking_the_text_and_returning_a_string(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graphs=PLAIN))
    first = await _reply(h, "one")
    assert first["reply"] == "#1: one"
    # ``entrypoint.final(save=…)`` keeps a count, not the reply, as ``previous``.
    assert (await _reply(h, "two", session_id=first["session_id"]))["reply"] == "#2: two"


async def test_a_failed_entrypoint_turn_leaves_no_trace_in_previous(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graphs=FUNCTIONAL))
    first = await _reply(h, "one")
    sid = first["session_id"]
    failed = await _reply(h, "[[boom]] two", session_id=sid)
    assert (failed["status"], failed["error"]["type"]) == ("failed", "turn_failed")
    # The failed turn was rolled back: ``previous`` holds one user message, so this is turn 2.
    assert (await _reply(h, "three", session_id=sid))["reply"] == "turn 2: three"


@pytest.mark.parametrize("value", ["", "Nope", "a" * 41, "a b"])
async def test_a_graph_name_out_of_form_is_a_bad_field(
    value: str, harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graphs=FUNCTIONAL))
    refused = await h.chat(message="hi", graph=value)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "body.graph"
    listed = (await h.client.get("/v1/sessions", headers={"X-User-Id": "alice"})).json()["items"]
    assert listed == []


async def test_an_entrypoint_session_rewinds_to_an_earlier_turn(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(graphs=FUNCTIONAL))
    first = await _reply(h, "one")
    sid = first["session_id"]
    await _reply(h, "two", session_id=sid)
    history = (await h.client.get(f"/v1/sessions/{sid}/history", headers={"X-User-Id": "alice"})).json()[
        "items"
    ]
    end_of_first = next(c["checkpoint_id"] for c in history if c["message_id"] == first["message_id"])
    rewound = await h.client.post(
        f"/v1/sessions/{sid}/rewind", json={"user_id": "alice", "checkpoint_id": end_of_first}
    )
    assert rewound.status_code == 200, rewound.text
    assert rewound.json()["status"] == "completed", rewound.json()
    # ``previous`` is the first turn's again: the second turn is forgotten.
    assert (await _reply(h, "three", session_id=sid))["reply"] == "turn 2: three"


async def test_static_breakpoints_apply_to_the_graphs_that_have_the_node(
    harness_factory: Any, make_settings: Any
) -> None:
    graphs = "qa=tests.graphs.custom_state:qa,fn=tests.graphs.functional:bot"
    h: AppHarness = await harness_factory(make_settings(graphs=graphs, interrupt_before=["answer"]))
    listed = (await h.client.get("/v1/graphs", headers={"X-User-Id": "alice"})).json()["items"]
    assert {g["name"]: g["interrupts"] for g in listed} == {"qa": ["confirm", "breakpoint"], "fn": None}
    paused = await _reply(h, "why?")
    assert paused["status"] == "interrupted"
    assert paused["interrupt"][0]["kind"] == "breakpoint"
    # The entrypoint has no node "answer": it runs through.
    assert (await _reply(h, "why?", graph="fn"))["reply"] == "turn 1: why?"
