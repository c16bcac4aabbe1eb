"""``GET /metrics`` after real turns, on every backend: the counters and histograms move by exactly what
the turns did, the HTTP counter names route templates, and the storage-wide gauges follow the data.

With the job queue the API instance runs no turn: its own ``/metrics`` counts the HTTP requests, and the
worker's registry (what ``parley worker`` serves on ``PARLEY_METRICS_ADDRESS``) counts the turns."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from parley.api.app import create_app
from parley.core.api_keys import create_key
from parley.core.auth import CallerRole
from parley.observability.metrics import Metrics
from parley.runners.worker_main import run_worker
from tests.backends import Backend
from tests.waiting import wait_until_async

ORDER_MUGS = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@dataclass
class Deployment:
    client: httpx.AsyncClient
    worker_metrics: Metrics | None

    async def api_samples(self) -> Samples:
        response = await self.client.get("/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return parse(response.text)

    async def turn_samples(self) -> Samples:
        if self.worker_metrics is not None:
            return parse(self.worker_metrics.render().decode())
        return await self.api_samples()


@pytest.fixture
async def deployment(backend: Backend, make_settings: Any) -> AsyncIterator[Deployment]:
    settings = make_settings(metrics_refresh_seconds=0.1)
    async with AsyncExitStack() as stack:
        worker_metrics = None
        if backend.queue:
            worker_metrics = Metrics()
            stop, ready = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(run_worker(settings, stop=stop, ready=ready, metrics=worker_metrics))

            async def _stop() -> None:
                stop.set()
                await task

            stack.push_async_callback(_stop)
            await wait_until_async(lambda: _ready(ready, task), what="the worker")
        app = create_app(settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://parley")
        )
        yield Deployment(client=client, worker_metrics=worker_metrics)


async def _ready(ready: asyncio.Event, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return ready.is_set()


async def _chat(d: Deployment, message: str) -> dict[str, Any]:
    response = await d.client.post("/v1/chat", json={"user_id": "alice", "message": message, "wait": 30})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_turns_move_the_counters_by_exactly_what_they_did(deployment: Deployment) -> None:
    before = await deployment.turn_samples()
    completed = await _chat(deployment, "hello")
    failed = await _chat(deployment, "[[fail]] this one breaks")
    interrupted = await _chat(deployment, ORDER_MUGS)
    assert (completed["status"], failed["status"], interrupted["status"]) == (
        "completed",
        "failed",
        "interrupted",
    )
    after = await deployment.turn_samples()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    for outcome in ("completed", "failed", "interrupted"):
        assert delta("parley_turns_total", outcome=outcome) == 1, outcome
        assert delta("parley_turn_duration_seconds_count", outcome=outcome) == 1, outcome
    assert delta("parley_turns_total", outcome="cancelled") == 0
    assert delta("parley_turn_queued_seconds_count") == 3
    ok = delta("parley_model_calls_total", result="ok")
    errors = delta("parley_model_calls_total", result="error")
    assert errors == 1  # the [[fail]] turn's one call (a permanent error is not retried)
    assert ok >= 2  # at least one call each for the completed and the interrupted turns
    assert delta("parley_model_call_duration_seconds_count") == ok + errors
    assert delta("parley_model_tokens_total", direction="output") > 0
    assert delta("parley_model_tokens_total", direction="input") > 0
    assert value(after, "parley_turns_running") == 0


async def test_http_requests_are_counted_by_route_template_and_status(deployment: Deployment) -> None:
    before = await deployment.api_samples()
    body = await _chat(deployment, "hello")
    message = await deployment.client.get(
        f"/v1/messages/{body['message_id']}", headers={"X-User-Id": "alice"}
    )
    assert message.status_code == 200
    missing = await deployment.client.get("/v1/messages/nope", headers={"X-User-Id": "alice"})
    assert missing.status_code == 404
    unknown = await deployment.client.get(f"/no/such/{body['message_id']}")
    assert unknown.status_code == 404
    after = await deployment.api_samples()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/v1/messages/{message_id}"
    assert delta("parley_http_requests_total", method="POST", route="/v1/chat", status="200") == 1
    assert delta("parley_http_requests_total", method="GET", route=route, status="200") == 1
    assert delta("parley_http_requests_total", method="GET", route=route, status="404") == 1
    assert delta("parley_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert delta("parley_http_request_duration_seconds_count", method="GET", route=route) == 2
    assert delta("parley_http_request_duration_seconds_count", method="POST", route="/v1/chat") == 1
    # The scrape before this one is counted too; no label ever holds a raw path.
    assert delta("parley_http_requests_total", method="GET", route="/metrics", status="200") == 1
    assert not any(body["message_id"] in dict(labels).get("route", "") for _, labels in after)


async def test_the_backlog_gauges_follow_storage(deployment: Deployment) -> None:
    await _chat(deployment, ORDER_MUGS)

    async def one_interrupt_pending() -> bool:
        samples = await deployment.api_samples()
        return value(samples, "parley_interrupts_pending") == 1 and value(samples, "parley_turns_queued") == 0

    await wait_until_async(one_interrupt_pending, what="the pending-interrupt gauge at 1")


@pytest.mark.inprocess_only
async def test_with_keys_metrics_are_for_admin_keys_only(harness_factory: Any, make_settings: Any) -> None:
    h = await harness_factory(make_settings(auth="keys", key_cache_seconds=0))
    tokens = {}
    for role in ("service", "operator", "admin"):
        made = await create_key(store=h.services.store, role=CallerRole(role), user_id=None, name=role)
        tokens[role] = {"Authorization": f"Bearer {made.token}"}
    assert (await h.client.get("/metrics")).status_code == 401
    for role in ("service", "operator"):
        refused = await h.client.get("/metrics", headers=tokens[role])
        assert refused.status_code == 403, role
        assert refused.json()["type"] == "/problems/role-forbidden"
    assert (await h.client.get("/metrics", headers=tokens["admin"])).status_code == 200
    # (With auth off they are open: every other test of this file reads them without a key.)


async def test_with_metrics_off_nothing_is_counted_and_metrics_are_not_served(
    harness_factory: Any, make_settings: Any
) -> None:
    h = await harness_factory(make_settings(metrics_enabled=False))
    sent = await h.client.post("/v1/chat", json={"user_id": "alice", "message": "hi", "wait": 30})
    assert sent.status_code == 200
    refused = await h.client.get("/metrics")
    assert refused.status_code == 404
    assert "PARLEY_METRICS_ENABLED" in refused.json()["detail"]
    counted = {name for name, _ in parse(h.services.metrics.render().decode())}
    assert "parley_turns_total" not in counted  # a turn ended, and nothing counted it
    assert "parley_http_requests_total" not in counted


async def test_an_app_stopped_right_after_its_start_stops_at_once(make_settings: Any) -> None:
    """Stopped while the backlog refresh's first query is under way. On PostgreSQL the cancel that stopped
    it came back out of the driver as a storage error, which the loop survived: the app's shutdown waited
    for it for good (15 s a cycle here, until this test's own deadline cancelled it)."""
    app = create_app(make_settings())

    async def start_and_stop() -> None:
        async with app.router.lifespan_context(app):
            pass

    for _ in range(3):
        started = time.monotonic()
        await asyncio.wait_for(start_and_stop(), 30)
        assert time.monotonic() - started < 5
