"""Spans with an in-memory exporter: a request's span, its turn's as a child, a span per graph node
under the turn and per model call under its node — and nothing at all when tracing is off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from parley.api.app import create_app
from parley.core.records import MessageRecord
from parley.observability.metrics import Metrics
from parley.observability.tracing import Tracing, exporter_configured
from parley.observability.turns import TurnInstruments
from tests.waiting import wait_until_async

pytestmark = pytest.mark.inprocess_only  # the turn runs in the process that accepted it


@pytest.fixture
async def traced(make_settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with AsyncExitStack() as stack:
        app = create_app(make_settings(), tracer_provider=provider)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://parley")
        )
        yield client, exporter


def _by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_request_turn_node_and_model_spans_nest(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter],
) -> None:
    client, exporter = traced
    response = await client.post("/v1/chat", json={"user_id": "alice", "message": "hello", "wait": 30})
    assert response.json()["status"] == "completed"
    message_id = response.json()["message_id"]

    async def turn_ended() -> bool:
        return bool(_by_name(exporter.get_finished_spans(), "turn"))

    await wait_until_async(turn_ended, what="the turn's span")
    spans = exporter.get_finished_spans()
    [request] = _by_name(spans, "POST /v1/chat")
    assert request.kind is SpanKind.SERVER
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["http.route"] == "/v1/chat"
    [turn] = _by_name(spans, "turn")
    assert turn.context.trace_id == request.context.trace_id
    assert _parent_id(turn) == request.context.span_id
    assert turn.attributes is not None
    assert turn.attributes["parley.message_id"] == message_id
    assert turn.attributes["parley.session_id"] == response.json()["session_id"]
    assert turn.attributes["parley.status"] == "completed"
    assert turn.attributes["parley.attempts"] == 1
    nodes = [s for s in spans if s.name.startswith("node ")]
    assert nodes, [s.name for s in spans]
    assert all(_parent_id(n) == turn.context.span_id for n in nodes)
    models = [s for s in spans if s.name.startswith("chat")]
    assert models, [s.name for s in spans]
    node_ids = {n.context.span_id: n for n in nodes}
    for model in models:
        assert model.kind is SpanKind.CLIENT
        assert _parent_id(model) in node_ids, model.name
    # The assistant's model call runs in its ``agent`` node.
    assert any(node_ids[_parent_id(m)].name == "node agent" for m in models)  # type: ignore[index]


async def test_an_incoming_traceparent_is_continued(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter],
) -> None:
    client, exporter = traced
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = await client.get("/healthz", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert response.status_code == 200
    [span] = _by_name(exporter.get_finished_spans(), "GET /healthz")
    assert f"{span.context.trace_id:032x}" == trace_id
    assert _parent_id(span) == 0x00F067AA0BA902B7


def test_without_an_endpoint_nothing_is_traced() -> None:
    """Off, a turn's scope is one shared object with no handler: no span, no callback, per turn."""
    assert not exporter_configured({})
    assert not exporter_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"})
    assert exporter_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    tracing = Tracing()
    assert not tracing.enabled
    instruments = TurnInstruments(metrics=Metrics(), tracing=tracing)
    message: MessageRecord = None  # type: ignore[assignment]  # not read when tracing is off
    with instruments.turn(message) as first, instruments.turn(message) as second:
        assert first is second
        assert list(first.callbacks) == []
