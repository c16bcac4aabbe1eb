"""Export and import of sessions across instances and backends: round trips, continuing elsewhere,
bad documents refused with nothing written, who may do what."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from parley.settings import Settings
from parley.storage.transfer.exporter import ExportInterrupted
from tests.backends import PostgresDatabases, postgres_available
from tests.conftest import AppHarness, require_service
from tests.transfer_support import OPERATOR, content, reseal, settings_for, table_counts
from tests.waiting import wait_until_async

ALICE = {"X-User-Id": "alice"}
ORDER_MUGS = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'
JSON = {"Content-Type": "application/json"}


@pytest.fixture(params=["sqlite", "postgres"])
def target(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_databases: PostgresDatabases | None
) -> Iterator[Settings]:
    """Another instance to import into: SQLite on another data dir, or another PostgreSQL database."""
    if request.param == "sqlite":
        yield settings_for("sqlite", tmp_path / "target", None)
        return
    if postgres_databases is None:
        require_service("postgresql", False, postgres_available()[1])
    assert postgres_databases is not None
    url = postgres_databases.create()
    try:
        yield settings_for("postgres", tmp_path / "target", url)
    finally:
        postgres_databases.drop(url)


async def _session_waiting_on_a_confirmation(h: AppHarness) -> tuple[str, dict[str, Any]]:
    """Two completed turns, then one waiting for the user's confirmation of an order."""
    first = (await h.chat(message="hello there")).json()
    sid = first["session_id"]
    assert first["status"] == "completed", first
    assert (await h.chat(session_id=sid, message="and again")).json()["status"] == "completed"
    body = (await h.chat(session_id=sid, message=ORDER_MUGS)).json()
    assert body["status"] == "interrupted", body
    [pending] = body["interrupt"]
    return sid, pending


async def _export(h: AppHarness, sid: str, headers: dict[str, str] = ALICE) -> bytes:
    response = await h.client.get(f"/v1/sessions/{sid}/export", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.content


async def _import(h: AppHarness, document: bytes, *, replace: bool = False) -> Any:
    return await h.client.post(
        "/v1/sessions/import",
        content=document,
        headers={**OPERATOR, **JSON},
        params={"replace": "true"} if replace else {},
    )


async def _transcript(h: AppHarness, sid: str) -> list[tuple[str, str]]:
    body = (await h.client.get(f"/v1/sessions/{sid}/messages", params={"limit": 200}, headers=ALICE)).json()
    return [(item["role"], item["content"]) for item in body["items"]]


async def test_a_session_moves_to_another_instance_and_goes_on_there(
    target: Settings, harness_factory: Any, make_settings: Any
) -> None:
    source = await harness_factory(make_settings(operator_header_enabled=True))
    sid, pending = await _session_waiting_on_a_confirmation(source)
    document = await _export(source, sid)

    there = await harness_factory(target)
    imported = await _import(there, document)
    assert imported.status_code == 201, imported.text
    assert imported.headers["location"] == f"/v1/sessions/{sid}"
    assert imported.json()["user_id"] == "alice"

    # Export → import → export: the same document, but for when it was made.
    again = await _export(there, sid)
    assert content(again) == content(document)
    assert await _transcript(there, sid) == await _transcript(source, sid)
    session = (await there.client.get(f"/v1/sessions/{sid}", headers=ALICE)).json()
    assert session["status"] == "interrupted"
    assert [i["id"] for i in session["pending_interrupts"]] == [pending["id"]]

    # The pending confirmation is answered there, and the conversation goes on with its history.
    done = await there.client.post(
        f"/v1/sessions/{sid}/resume",
        json={"user_id": "alice", "interrupt_id": pending["id"], "value": {"decision": "approve"}},
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    follow = (await there.chat(session_id=sid, message="what did I order?")).json()
    assert follow["status"] == "completed", follow
    saved = await there.services.checkpointer.aget_tuple({"configurable": {"thread_id": sid}})
    assert saved is not None
    state_ids = [m.id for m in saved.checkpoint["channel_values"]["messages"]]
    first_message = json.loads(document)["messages"][0]["message_id"]
    assert first_message in state_ids  # the new turn ran on the imported history
    assert state_ids[-2] == follow["message_id"]

    # And back over the original with replace: the source's export is what it was.
    assert (await _import(source, again)).status_code == 409
    assert (await _import(source, again, replace=True)).status_code == 201
    assert content(await _export(source, sid)) == content(document)


async def test_an_operator_exports_any_session_and_another_user_finds_none(
    harness_factory: Any, make_settings: Any
) -> None:
    h = await harness_factory(make_settings(operator_header_enabled=True))
    sid = (await h.chat(message="hi")).json()["session_id"]
    mallory = await h.client.get(f"/v1/sessions/{sid}/export", headers={"X-User-Id": "mallory"})
    assert mallory.status_code == 404
    assert mallory.headers["content-type"] == "application/problem+json"
    assert content(await _export(h, sid, OPERATOR)) == content(await _export(h, sid))


async def test_export_waits_for_the_turn_and_import_is_for_operators(
    harness_factory: Any, make_settings: Any
) -> None:
    h = await harness_factory(make_settings(operator_header_enabled=True))
    slow = await h.chat(message="[[sleep:1]] take your time", wait=0)
    assert slow.status_code == 202
    sid, message_id = slow.json()["session_id"], slow.json()["message_id"]
    busy = await h.client.get(f"/v1/sessions/{sid}/export", headers=ALICE)
    assert busy.status_code == 409
    assert busy.json()["type"].endswith("session-busy")

    async def ended() -> bool:
        status = (await h.client.get(f"/v1/messages/{message_id}", headers=ALICE)).json()["status"]
        return bool(status == "completed")

    await wait_until_async(ended, timeout=20, what="the slow turn")
    document = await _export(h, sid)
    refused = await h.client.post("/v1/sessions/import", content=document, headers={**ALICE, **JSON})
    assert refused.status_code == 403


async def test_an_import_over_a_session_in_use_is_a_conflict_and_changes_nothing(
    harness_factory: Any, make_settings: Any
) -> None:
    h = await harness_factory(make_settings(operator_header_enabled=True))
    sid = (await h.chat(message="hi")).json()["session_id"]
    document = await _export(h, sid)
    before = table_counts(h.services.settings)
    conflict = await _import(h, document)
    assert conflict.status_code == 409
    assert table_counts(h.services.settings) == before


async def test_an_import_past_its_size_limit_is_413(harness_factory: Any, make_settings: Any) -> None:
    h = await harness_factory(make_settings(operator_header_enabled=True, import_max_bytes=4096))
    sid = (await h.chat(message="hi " * 1000)).json()["session_id"]
    document = await _export(h, sid)
    assert len(document) > 4096
    assert (await _import(h, document)).status_code == 413


def _bad_documents(document: bytes) -> list[tuple[str, bytes]]:
    """Documents damaged as hypothesis draws them: truncated, a byte flipped, a newer version, a value
    of the wrong type (the last two with their checksum made to match again)."""
    parsed = json.loads(document)
    drawn: list[tuple[str, bytes]] = []
    rows = [(key, i) for key in ("messages", "transcript", "interrupts") for i in range(len(parsed[key]))]

    @st.composite
    def damaged(draw: st.DrawFn) -> tuple[str, bytes]:
        how = draw(st.sampled_from(["truncate", "flip", "version", "type", "checkpoint"]))
        if how == "truncate":
            return how, document[: draw(st.integers(0, len(document) - 2))]
        if how == "flip":
            at = draw(st.integers(0, len(document) - 2))  # the last byte is the closing newline
            bad = bytearray(document)
            bad[at] ^= draw(st.integers(1, 255))
            with contextlib.suppress(ValueError):  # not JSON any more: damaged for sure
                assume(json.loads(bytes(bad)) != parsed)  # a flip that changes no value is no damage
            return how, bytes(bad)
        changed = json.loads(document)
        if how == "version":
            changed["version"] = draw(st.integers(2, 10**6) | st.just("1") | st.just(1.5) | st.none())
        elif how == "type":
            key, index = draw(st.sampled_from(rows))
            row = changed[key][index]
            column = draw(st.sampled_from(sorted(row)))
            wrong = (
                st.lists(st.integers(), max_size=2)
                | st.booleans()
                | st.dictionaries(st.text(max_size=3), st.integers(), max_size=1)
            )
            if isinstance(row[column], int):  # an integer column (a null one may be text)
                wrong |= st.text(max_size=5)
            row[column] = draw(wrong)
        else:
            index = draw(st.integers(0, len(changed["checkpoints"]) - 1))
            item = changed["checkpoints"][index]
            field = draw(st.sampled_from(["checkpoint", "metadata", "writes", "checkpoint_id"]))
            # Each wrong for its field (metadata may be any object, writes any list, even an empty one).
            wrong: list[Any] = [None, 7, "x", {} if field == "writes" else []]
            if field == "checkpoint":
                wrong.append({"type": "msgpack", "data": "AAAA"})  # deserialises, but to no checkpoint
            item[field] = draw(st.sampled_from(wrong))
        return how, reseal(changed)

    @hypothesis_settings(
        max_examples=40,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(damaged())
    def collect(example: tuple[str, bytes]) -> None:
        drawn.append(example)

    collect()
    return drawn


async def test_damaged_documents_are_refused_and_nothing_is_written(
    target: Settings, harness_factory: Any, make_settings: Any
) -> None:
    source = await harness_factory(make_settings(operator_header_enabled=True))
    sid, _ = await _session_waiting_on_a_confirmation(source)
    document = await _export(source, sid)
    there = await harness_factory(target)
    before = table_counts(target)
    bad = _bad_documents(document)
    assert {how for how, _ in bad} == {"truncate", "flip", "version", "type", "checkpoint"}
    for how, damaged in bad:
        refused = await _import(there, damaged, replace=True)
        assert refused.status_code == 422, (how, refused.text)
        problem = refused.json()
        assert refused.headers["content-type"] == "application/problem+json"
        assert problem["errors"][0]["field"].startswith("body"), problem
        assert table_counts(target) == before, how

    # The same checks name what is wrong.
    parsed = json.loads(document)
    newer = await _import(there, reseal({**parsed, "version": 2}))
    assert newer.json()["errors"][0]["field"] == "body.version"
    assert "newer" in newer.json()["errors"][0]["msg"]
    tampered = json.loads(document)
    tampered["transcript"][0]["content"] = "I never said that"
    forged = await _import(there, json.dumps(tampered).encode())
    assert forged.json()["errors"][0]["field"] == "body.checksum.value"
    other_graph = await _import(there, reseal({**parsed, "graph": "elsewhere:graph"}))
    assert other_graph.json()["errors"][0]["field"] == "body.graph"
    assert table_counts(target) == before
    # The intact document still goes in.
    assert (await _import(there, document)).status_code == 201


async def test_a_question_asked_inside_a_subgraph_is_answered_on_the_other_instance(
    target: Settings, harness_factory: Any, make_settings: Any
) -> None:
    nested = "tests.graphs.nested:graph"
    source = await harness_factory(make_settings(operator_header_enabled=True, graph=nested))
    asked = (await source.chat(message="hi")).json()
    assert asked["status"] == "interrupted", asked
    [question] = asked["interrupt"]
    document = await _export(source, asked["session_id"])
    namespaces = {item["checkpoint_ns"] for item in json.loads(document)["checkpoints"]}
    assert "" in namespaces
    assert any(ns.startswith("ask:") for ns in namespaces), namespaces  # the subgraph's own checkpoints

    there = await harness_factory(
        settings_for(target.backend, target.data_dir, target.database_url, graph=nested)
    )
    assert (await _import(there, document)).status_code == 201
    assert content(await _export(there, asked["session_id"])) == content(document)
    answered = await there.client.post(
        f"/v1/sessions/{asked['session_id']}/resume",
        json={"user_id": "alice", "interrupt_id": question["id"], "value": "Ada"},
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["reply"] == "Hello, Ada! You said 1 thing(s)."


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"format": "parley.session"} trailing',
        b'{"format": NaN}',
        b'\xef\xbb\xbf{"format": "parley.session"}',
        '{"format": "parley.session"}'.encode("utf-16"),
        b'{"format": "caf\xe9"}',
        b"[" * 1000 + b"]" * 1000,
    ],
    ids=["empty", "array", "trailing", "nan", "bom", "utf16", "not-utf8", "deep"],
)
async def test_a_body_that_is_no_json_object_is_422_naming_where(
    harness_factory: Any, make_settings: Any, body: bytes
) -> None:
    h = await harness_factory(make_settings(operator_header_enabled=True))
    before = table_counts(h.services.settings)
    refused = await _import(h, body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"].startswith("body")
    assert table_counts(h.services.settings) == before


async def test_rows_that_collide_after_the_checkpoints_went_in_leave_nothing_behind(
    target: Settings, harness_factory: Any, make_settings: Any
) -> None:
    source = await harness_factory(make_settings(operator_header_enabled=True))
    keyed = await source.client.post(
        "/v1/chat", json={"user_id": "alice", "message": "hi"}, headers={"Idempotency-Key": "same-key"}
    )
    document = await _export(source, keyed.json()["session_id"])
    there = await harness_factory(target)
    # Another session of alice's there used the key already: only the rows' transaction finds out, after
    # the checkpoints were written — and those are removed again.
    assert (
        await there.client.post(
            "/v1/chat", json={"user_id": "alice", "message": "other"}, headers={"Idempotency-Key": "same-key"}
        )
    ).status_code == 200
    before = table_counts(target)
    collided = await _import(there, document)
    assert collided.status_code == 409, collided.text
    assert "idempotency" in collided.json()["detail"]
    assert table_counts(target) == before


async def test_a_session_that_moves_during_its_export_gets_no_checksum(
    harness_factory: Any, make_settings: Any
) -> None:
    h = await harness_factory(make_settings(operator_header_enabled=True))
    sid = (await h.chat(message="hi")).json()["session_id"]
    for i in range(8):  # enough for the document to leave in more than one chunk
        assert (await h.chat(session_id=sid, message=f"turn {i}")).json()["status"] == "completed"
    stream = await h.services.transfer.open_export(session_id=sid, user_id="alice", operator=False)
    received = [await anext(stream)]
    assert (await h.chat(session_id=sid, message="meanwhile")).json()["status"] == "completed"

    async def rest() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(ExportInterrupted):
        await rest()
    cut = b"".join(received)
    assert b'"checksum"' not in cut
    before = table_counts(h.services.settings)
    other = await _import(h, cut, replace=True)
    assert other.status_code == 422
    assert "truncated" in other.json()["detail"]
    assert table_counts(h.services.settings) == before


async def test_a_session_moves_only_to_an_instance_that_serves_its_graph(
    target: Settings, harness_factory: Any, make_settings: Any
) -> None:
    graphs = "qa=tests.graphs.custom_state:qa,fn=tests.graphs.functional:bot"
    source = await harness_factory(make_settings(operator_header_enabled=True, graphs=graphs))
    first = (await source.chat(message="one", graph="fn")).json()
    sid = first["session_id"]
    assert first["reply"] == "turn 1: one"
    document = await _export(source, sid)
    assert json.loads(document)["graph"] == "fn"

    # Served under the same name, in another place in the list (not the default there): the session keeps it.
    there = await harness_factory(
        settings_for(
            target.backend,
            target.data_dir,
            target.database_url,
            graphs="x=tests.graphs.counting:graph,fn=tests.graphs.functional:bot",
        )
    )
    assert (await _import(there, document)).status_code == 201
    session = (await there.client.get(f"/v1/sessions/{sid}", headers=ALICE)).json()
    assert session["graph"] == "fn"
    second = (await there.chat(session_id=sid, message="two")).json()
    assert second["reply"] == "turn 2: two"  # the entrypoint's ``previous`` came along


async def test_a_document_of_a_graph_not_served_here_is_refused(
    target: Settings, harness_factory: Any, make_settings: Any
) -> None:
    graphs = "qa=tests.graphs.custom_state:qa,fn=tests.graphs.functional:bot"
    source = await harness_factory(make_settings(operator_header_enabled=True, graphs=graphs))
    sid = (await source.chat(message="one", graph="fn")).json()["session_id"]
    document = await _export(source, sid)
    there = await harness_factory(
        settings_for(
            target.backend, target.data_dir, target.database_url, graphs="qa=tests.graphs.custom_state:qa"
        )
    )
    before = table_counts(target)
    refused = await _import(there, document)
    assert refused.status_code == 422
    [error] = refused.json()["errors"]
    assert error["field"] == "body.graph"
    assert "does not serve" in error["msg"]
    assert table_counts(target) == before
