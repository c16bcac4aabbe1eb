"""Completion webhooks through the real app on every backend, to a real receiver on a loopback port that
verifies each signature with the ``standardwebhooks`` package: every terminal status delivered, signed,
carrying exactly the message resource; retries keep the webhook-id; what is not retried; what is
refused before anything is stored or sent."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from parley.api.app import create_app
from parley.storage.webhook_outbox import SqlOutbox
from tests.conftest import AppHarness
from tests.e2e.server import free_port
from tests.waiting import wait_until_async
from tests.webhook_receiver import OLD_SECRET, SECRET, Receiver, running_receiver

ALICE = {"X-User-Id": "alice"}
ORDER_MUGS = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'
WEBHOOKS: dict[str, Any] = {
    "webhook_allowed_hosts": ["127.0.0.1/32"],
    "webhook_secret": [SECRET],
    "webhook_retry_base_seconds": 0.1,
    "webhook_retry_max_seconds": 0.3,
    "webhook_poll_seconds": 0.2,
    "webhook_timeout_seconds": 3,
}


async def _start(harness_factory: Any, make_settings: Any, **overrides: Any) -> AppHarness:
    h: AppHarness = await harness_factory(make_settings(**{**WEBHOOKS, **overrides}))
    return h


async def _deliveries(h: AppHarness, message_id: str) -> list[dict[str, Any]]:
    answer = await h.client.get(f"/v1/messages/{message_id}/deliveries", headers=ALICE)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def _settled(h: AppHarness, message_id: str, *, timeout: float = 15.0) -> dict[str, Any]:
    """The message's one delivery once it is no longer pending."""
    found: list[dict[str, Any]] = []

    async def ended() -> bool:
        found[:] = await _deliveries(h, message_id)
        return len(found) == 1 and found[0]["status"] != "pending"

    await wait_until_async(ended, timeout=timeout, what=f"the delivery of {message_id} to end")
    return found[0]


async def _message(h: AppHarness, message_id: str) -> dict[str, Any]:
    answer = await h.client.get(f"/v1/messages/{message_id}", headers=ALICE)
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


async def _assert_delivered_once(h: AppHarness, receiver: Receiver, message_id: str) -> dict[str, Any]:
    delivery = await _settled(h, message_id)
    assert delivery["status"] == "delivered", delivery
    [got] = receiver.of(delivery["webhook_id"])
    assert got.verified, got.error
    assert got.headers["content-type"] == "application/json"
    # The same JSON as GET /v1/messages/{id}, to the byte's meaning.
    assert got.json == await _message(h, message_id)
    [attempt] = delivery["attempts"]
    assert (attempt["attempt"], attempt["outcome"], attempt["status_code"]) == (1, "delivered", 204)
    return delivery


async def test_every_terminal_status_is_delivered_signed_with_the_message_resource(
    harness_factory: Any, make_settings: Any
) -> None:
    with running_receiver() as receiver:
        h = await _start(harness_factory, make_settings)
        url = receiver.url
        completed = (await h.chat(message="hello", callback_url=url, wait=10)).json()
        failed = (await h.chat(message="[[fail]] now", callback_url=url, wait=10)).json()
        interrupted = (await h.chat(message=ORDER_MUGS, callback_url=url, wait=10)).json()
        assert [completed["status"], failed["status"], interrupted["status"]] == [
            "completed",
            "failed",
            "interrupted",
        ]
        # A message queued behind a long turn, cancelled before it ran.
        busy = (await h.chat(message="[[sleep:30]] slow", wait=0)).json()
        queued = (
            await h.chat(message="behind it", session_id=busy["session_id"], callback_url=url, wait=0)
        ).json()
        cancelled = await h.client.post(f"/v1/messages/{queued['message_id']}/cancel", headers=ALICE)
        assert cancelled.json()["status"] == "cancelled"

        for message in (completed, failed, interrupted, cancelled.json()):
            delivered = await _assert_delivered_once(h, receiver, message["message_id"])
            body = receiver.of(delivered["webhook_id"])[0].json
            assert body["status"] == message["status"]
        assert receiver.count() == 4
        # The message posted without a callback_url has no delivery.
        await h.client.post(f"/v1/messages/{busy['message_id']}/cancel", headers=ALICE)
        assert await _deliveries(h, busy["message_id"]) == []


async def test_a_resume_with_a_callback_is_delivered(harness_factory: Any, make_settings: Any) -> None:
    with running_receiver() as receiver:
        h = await _start(harness_factory, make_settings)
        asked = (await h.chat(message=ORDER_MUGS, wait=10)).json()
        [question] = asked["interrupt"]
        answered = await h.client.post(
            f"/v1/sessions/{asked['session_id']}/resume",
            json={
                "user_id": "alice",
                "interrupt_id": question["id"],
                "value": {"decision": "approve"},
                "callback_url": receiver.url,
            },
        )
        assert answered.json()["status"] == "completed"
        await _assert_delivered_once(h, receiver, answered.json()["message_id"])
        assert await _deliveries(h, asked["message_id"]) == []


async def test_a_receiver_that_is_down_gets_it_later_under_the_same_webhook_id(
    harness_factory: Any, make_settings: Any
) -> None:
    port = free_port()  # nothing listens there yet: each attempt is refused
    h = await _start(harness_factory, make_settings)
    sent = (
        await h.chat(message="hello", callback_url=f"http://127.0.0.1:{port}/hooks/parley", wait=10)
    ).json()
    failures: list[dict[str, Any]] = []

    async def retried_twice() -> bool:
        [delivery] = await _deliveries(h, sent["message_id"])
        failures[:] = delivery["attempts"]
        return delivery["status"] == "pending" and len(failures) >= 2

    await wait_until_async(retried_twice, timeout=15, what="two failed attempts")
    assert all(a["outcome"] == "retry" and a["status_code"] is None for a in failures)
    assert all(a["error"].startswith("connection failed") for a in failures)
    webhook_id = (await _deliveries(h, sent["message_id"]))[0]["webhook_id"]
    with running_receiver(port) as receiver:
        delivery = await _settled(h, sent["message_id"])
        assert delivery["status"] == "delivered"
        assert delivery["webhook_id"] == webhook_id
        [got] = receiver.received
        assert got.verified
        assert got.webhook_id == webhook_id
        assert [a["outcome"] for a in delivery["attempts"]][-1] == "delivered"
        assert [a["attempt"] for a in delivery["attempts"]] == list(range(1, len(delivery["attempts"]) + 1))


async def test_a_5xx_is_retried_with_the_same_webhook_id_and_a_4xx_is_not(
    harness_factory: Any, make_settings: Any
) -> None:
    with running_receiver(statuses=[503, 500]) as flaky:
        h = await _start(harness_factory, make_settings)
        sent = (await h.chat(message="hello", callback_url=flaky.url, wait=10)).json()
        delivery = await _settled(h, sent["message_id"])
        assert delivery["status"] == "delivered"
        assert [(a["outcome"], a["status_code"]) for a in delivery["attempts"]] == [
            ("retry", 503),
            ("retry", 500),
            ("delivered", 204),
        ]
        arrivals = flaky.of(delivery["webhook_id"])
        assert len(arrivals) == 3
        assert all(r.verified for r in arrivals)
        # A retry is the same delivery: the same body, under the same id, each signed anew.
        assert len({r.body for r in arrivals}) == 1

    with running_receiver(default=410) as gone:
        sent = (await h.chat(message="hello", callback_url=gone.url, wait=10)).json()
        delivery = await _settled(h, sent["message_id"])
        assert delivery["status"] == "failed"
        [attempt] = delivery["attempts"]
        assert (attempt["outcome"], attempt["status_code"]) == ("failed", 410)
        assert attempt["response_excerpt"] == "ok"
        assert delivery["next_attempt_at"] is None
        assert gone.count() == 1


@pytest.mark.parametrize("status", [408, 429])
async def test_408_and_429_are_retried(harness_factory: Any, make_settings: Any, status: int) -> None:
    with running_receiver(statuses=[status]) as receiver:
        h = await _start(harness_factory, make_settings)
        sent = (await h.chat(message="hello", callback_url=receiver.url, wait=10)).json()
        delivery = await _settled(h, sent["message_id"])
        assert [a["status_code"] for a in delivery["attempts"]] == [status, 204]
        assert delivery["status"] == "delivered"


async def test_retry_after_is_honoured(harness_factory: Any, make_settings: Any) -> None:
    # The backoff is at most 0.3 s here; the receiver asks for 1 s.
    with running_receiver(statuses=[429], headers={"retry-after": "1"}) as receiver:
        h = await _start(harness_factory, make_settings)
        sent = (await h.chat(message="hello", callback_url=receiver.url, wait=10)).json()
        delivery = await _settled(h, sent["message_id"])
        first, second = (datetime.fromisoformat(a["started_at"]) for a in delivery["attempts"])
        assert (second - first).total_seconds() >= 1.0


async def test_a_delivery_is_given_up_once_its_retry_window_has_passed(
    harness_factory: Any, make_settings: Any
) -> None:
    port = free_port()  # nobody ever listens there
    h = await _start(harness_factory, make_settings, webhook_retry_hours=1 / 3600)  # one second
    sent = (await h.chat(message="hello", callback_url=f"http://127.0.0.1:{port}/x", wait=10)).json()
    delivery = await _settled(h, sent["message_id"])
    assert delivery["status"] == "failed"
    assert delivery["last_error"].startswith(f"gave up after {len(delivery['attempts'])} attempts")
    assert [a["outcome"] for a in delivery["attempts"]][-1] == "failed"
    assert all(a["outcome"] == "retry" for a in delivery["attempts"][:-1])


@pytest.mark.inprocess_only  # the process that sends counts; with the queue that is the worker
async def test_attempts_and_the_delay_are_counted(harness_factory: Any, make_settings: Any) -> None:
    with running_receiver(statuses=[500]) as receiver:
        h = await _start(harness_factory, make_settings)
        sent = (await h.chat(message="hello", callback_url=receiver.url, wait=10)).json()
        await _settled(h, sent["message_id"])
        metrics = (await h.client.get("/metrics")).text
        assert 'parley_webhook_attempts_total{outcome="retry"} 1.0' in metrics
        assert 'parley_webhook_attempts_total{outcome="delivered"} 1.0' in metrics
        assert "parley_webhook_delivery_delay_seconds_count 1.0" in metrics


async def test_ended_deliveries_are_pruned(harness_factory: Any, make_settings: Any) -> None:
    with running_receiver() as receiver:
        h = await _start(harness_factory, make_settings)
        sent = (await h.chat(message="hello", callback_url=receiver.url, wait=10)).json()
        await _settled(h, sent["message_id"])
        outbox = SqlOutbox(h.services.store.db)  # type: ignore[attr-defined]
        assert await outbox.prune(finished_before=datetime.now(UTC) - timedelta(minutes=1)) == 0
        assert await outbox.prune(finished_before=datetime.now(UTC) + timedelta(seconds=1)) == 1
        assert await _deliveries(h, sent["message_id"]) == []
        assert h.backend.count("parley_webhook_attempts") == 0


async def test_a_redirect_is_not_followed(harness_factory: Any, make_settings: Any) -> None:
    with running_receiver() as elsewhere:
        with running_receiver(default=307, headers={"location": elsewhere.url}) as redirecting:
            h = await _start(harness_factory, make_settings)
            sent = (await h.chat(message="hello", callback_url=redirecting.url, wait=10)).json()
            delivery = await _settled(h, sent["message_id"])
            assert delivery["status"] == "failed"
            assert delivery["attempts"][0]["error"] == "HTTP 307: a redirect, not followed"
            assert redirecting.count() == 1
        assert elsewhere.count() == 0


async def test_every_secret_signs_so_receivers_can_rotate(harness_factory: Any, make_settings: Any) -> None:
    with running_receiver(secret=OLD_SECRET) as old_receiver:
        h = await _start(harness_factory, make_settings, webhook_secret=[SECRET, OLD_SECRET])
        sent = (await h.chat(message="hello", callback_url=old_receiver.url, wait=10)).json()
        delivery = await _settled(h, sent["message_id"])
        [got] = old_receiver.of(delivery["webhook_id"])
        assert got.verified, got.error
        assert len(got.headers["webhook-signature"].split(" ")) == 2


async def _nothing_stored(h: AppHarness) -> None:
    sessions = await h.client.get("/v1/sessions", headers=ALICE)
    assert sessions.json()["items"] == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.1.2.3/hook", "not in PARLEY_WEBHOOK_ALLOWED_HOSTS"),
        ("http://169.254.169.254/latest/meta-data", "not in PARLEY_WEBHOOK_ALLOWED_HOSTS"),
        ("http://[::1]:8080/hook", "not in PARLEY_WEBHOOK_ALLOWED_HOSTS"),
        ("http://evil.example.net/hook", "the host evil.example.net is not in"),
        ("ftp://127.0.0.1/hook", "absolute http or https URL"),
        ("/relative/hook", "absolute http or https URL"),
        ("http://user:pw@127.0.0.1/hook", "user name or password"),
    ],
)
async def test_a_destination_outside_the_allow_list_is_refused_when_posted(
    harness_factory: Any, make_settings: Any, url: str, why: str
) -> None:
    h = await _start(harness_factory, make_settings)
    refused = await h.chat(message="hello", callback_url=url)
    assert refused.status_code == 422
    problem = refused.json()
    assert refused.headers["content-type"] == "application/problem+json"
    [error] = problem["errors"]
    assert error["field"] == "body.callback_url"
    assert why in error["msg"]
    await _nothing_stored(h)


async def test_callback_urls_are_refused_while_webhooks_are_off(harness: AppHarness) -> None:
    refused = await harness.chat(message="hello", callback_url="https://hooks.example.com/x")
    assert refused.status_code == 422
    [error] = refused.json()["errors"]
    assert error["field"] == "body.callback_url"
    assert "webhooks are off" in error["msg"]
    await _nothing_stored(harness)


async def test_a_listed_name_that_resolves_inside_the_network_is_refused_at_delivery(
    harness_factory: Any, make_settings: Any
) -> None:
    # 'localhost' is allowed by name, not its address: accepted when posted, refused once resolved (via
    # /etc/hosts, no query leaves the machine) — and the receiver listening there gets nothing.
    with running_receiver() as receiver:
        h = await _start(harness_factory, make_settings, webhook_allowed_hosts=["localhost"])
        sent = await h.chat(message="hello", callback_url=f"http://localhost:{receiver.port}/hook", wait=10)
        assert sent.status_code == 200
        delivery = await _settled(h, sent.json()["message_id"])
        assert delivery["status"] == "failed"
        [attempt] = delivery["attempts"]
        assert attempt["error"].startswith("refused: localhost resolves to 127.0.0.1")
        assert attempt["status_code"] is None
        assert receiver.count() == 0


async def test_an_idempotent_repeat_must_name_the_same_callback(
    harness_factory: Any, make_settings: Any
) -> None:
    with running_receiver() as receiver:
        h = await _start(harness_factory, make_settings)
        key = {"Idempotency-Key": "once"}
        body = {"user_id": "alice", "message": "hello", "callback_url": receiver.url, "wait": 10}
        first = await h.client.post("/v1/chat", json=body, headers=key)
        again = await h.client.post("/v1/chat", json=body, headers=key)
        assert again.json()["message_id"] == first.json()["message_id"]
        other = await h.client.post(
            "/v1/chat", json={**body, "callback_url": receiver.url + "/other"}, headers=key
        )
        assert other.status_code == 422
        assert other.json()["errors"][0]["field"] == "header.Idempotency-Key"
        await _settled(h, first.json()["message_id"])
        assert receiver.count() == 1


async def test_deliveries_are_the_message_owners_to_read(harness_factory: Any, make_settings: Any) -> None:
    with running_receiver() as receiver:
        h = await _start(harness_factory, make_settings)
        sent = (await h.chat(message="hello", callback_url=receiver.url, wait=10)).json()
        await _settled(h, sent["message_id"])
        other = await h.client.get(
            f"/v1/messages/{sent['message_id']}/deliveries", headers={"X-User-Id": "bob"}
        )
        assert other.status_code == 404
        unknown = await h.client.get("/v1/messages/nope/deliveries", headers=ALICE)
        assert unknown.status_code == 404


async def test_deleting_the_session_deletes_its_deliveries(harness_factory: Any, make_settings: Any) -> None:
    with running_receiver() as receiver:
        h = await _start(harness_factory, make_settings)
        sent = (await h.chat(message="hello", callback_url=receiver.url, wait=10)).json()
        await _settled(h, sent["message_id"])
        assert h.backend.count("parley_webhook_deliveries") == 1
        assert h.backend.count("parley_webhook_attempts") == 1
        deleted = await h.client.delete(f"/v1/sessions/{sent['session_id']}", headers=ALICE)
        assert deleted.status_code == 204
        assert h.backend.count("parley_webhook_deliveries") == 0
        assert h.backend.count("parley_webhook_attempts") == 0


async def test_an_app_with_webhooks_stopped_right_after_its_start_stops_at_once(make_settings: Any) -> None:
    """Stopped while the deliverer's first look at the outbox is under way (it looks at once, and then every
    0.2 s here). On PostgreSQL a cancel landing in that query can come back as a storage error, which the
    loop survives by design: a stop by cancel alone would wait for it for good. Ten cycles, each bounded."""
    app = create_app(make_settings(**WEBHOOKS))

    async def start_and_stop() -> None:
        async with app.router.lifespan_context(app):
            pass

    for _ in range(10):
        started = time.monotonic()
        await asyncio.wait_for(start_and_stop(), 30)
        assert time.monotonic() - started < 5


async def test_a_delivery_goes_out_when_its_message_ends_not_at_the_next_poll(
    harness_factory: Any, make_settings: Any
) -> None:
    with running_receiver() as receiver:
        # A poll far away: only the wake the ending transaction gives the deliverer can send it in time.
        h = await _start(harness_factory, make_settings, webhook_poll_seconds=300)
        body = (await h.chat(message="hello", callback_url=receiver.url, wait=10)).json()
        assert body["status"] == "completed"
        delivery = await _settled(h, body["message_id"], timeout=5)
        assert delivery["status"] == "delivered"
        assert receiver.count() == 1
