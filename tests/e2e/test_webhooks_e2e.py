"""Completion webhooks across crashes, against real ``parley serve`` (and, for the queue, its API and worker
processes from the Procfile), to a receiver on a loopback port that verifies every signature with the
``standardwebhooks`` package: a SIGKILL between a message's end and its delivery, a SIGKILL in the middle
of a delivery, and a key's default callback made with the real ``parley keys create``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.e2e.deployments import Deployment
from tests.e2e.server import ServerProcess, create_key, free_port, keys_create
from tests.waiting import wait_until
from tests.webhook_receiver import SECRET, running_receiver

ALICE = {"X-User-Id": "alice"}


def _env(**extra: str) -> dict[str, str]:
    return {
        "PARLEY_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1/32",
        "PARLEY_WEBHOOK_SECRET": SECRET,
        "PARLEY_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "PARLEY_WEBHOOK_RETRY_MAX_SECONDS": "0.5",
        "PARLEY_WEBHOOK_POLL_SECONDS": "0.2",
        **extra,
    }


def _processes(deployment: Deployment) -> list[ServerProcess]:
    return [*deployment.workers, *deployment.apis]


def _delivery(client: httpx.Client, message_id: str) -> dict[str, Any]:
    answer = client.get(f"/v1/messages/{message_id}/deliveries", headers=ALICE)
    assert answer.status_code == 200, answer.text
    [delivery] = answer.json()["items"]
    result: dict[str, Any] = delivery
    return result


def _wait_for(
    client: httpx.Client, message_id: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def holds() -> bool:
        seen.update(_delivery(client, message_id))
        return check(seen)

    wait_until(holds, timeout=40, what=f"the delivery of {message_id}")
    return seen


def test_a_sigkill_after_the_turn_ended_and_before_delivery_loses_nothing(
    make_deployment: Callable[..., Deployment],
) -> None:
    port = free_port()  # the receiver is down: every attempt before the kill fails
    deployment = make_deployment(**_env())
    with httpx.Client(base_url=deployment.api.base_url, timeout=30) as client:
        sent = client.post(
            "/v1/chat",
            json={
                "user_id": "alice",
                "message": "hello",
                "callback_url": f"http://127.0.0.1:{port}/hooks",
                "wait": 20,
            },
        ).json()
        assert sent["status"] == "completed"
        before = _wait_for(client, sent["message_id"], lambda d: len(d["attempts"]) >= 1)
        assert before["status"] == "pending"
    for process in _processes(deployment):
        process.sigkill()
    with running_receiver(port) as receiver:
        for process in _processes(deployment):
            process.restart()
        with httpx.Client(base_url=deployment.api.base_url, timeout=30) as client:
            after = _wait_for(client, sent["message_id"], lambda d: d["status"] != "pending")
            message = client.get(f"/v1/messages/{sent['message_id']}", headers=ALICE).json()
    assert after["status"] == "delivered"
    assert after["webhook_id"] == before["webhook_id"]
    [got] = receiver.received
    assert got.verified, got.error
    assert got.webhook_id == before["webhook_id"]
    assert got.json == message


def test_a_delivery_cut_by_a_sigkill_is_sent_again_under_the_same_webhook_id(
    make_deployment: Callable[..., Deployment],
) -> None:
    hold = threading.Event()
    with running_receiver(hold=hold) as receiver:
        deployment = make_deployment(**_env(PARLEY_WEBHOOK_TIMEOUT_SECONDS="5"))
        with httpx.Client(base_url=deployment.api.base_url, timeout=30) as client:
            sent = client.post(
                "/v1/chat",
                json={"user_id": "alice", "message": "hello", "callback_url": receiver.url, "wait": 0},
            ).json()
            # The receiver has the request and holds it unanswered: the delivery is in flight.
            wait_until(lambda: receiver.count() == 1, timeout=30, what="the first delivery to arrive")
            for process in _processes(deployment):
                process.sigkill()
        hold.set()
        for process in _processes(deployment):
            process.restart()
        with httpx.Client(base_url=deployment.api.base_url, timeout=30) as client:
            # The dead process's lease lapses (timeout + 5 s); then another start sends it again.
            after = _wait_for(client, sent["message_id"], lambda d: d["status"] != "pending")
    assert after["status"] == "delivered"
    arrivals = receiver.of(after["webhook_id"])
    assert len(arrivals) == 2, [r.webhook_id for r in receiver.received]
    assert all(r.verified for r in arrivals)
    assert arrivals[0].body == arrivals[1].body
    # The cut attempt was never recorded (its process died first); the one that delivered is the second.
    assert [(a["attempt"], a["outcome"]) for a in after["attempts"]] == [(2, "delivered")]


def test_a_keys_default_callback_url_is_used_and_checked(make_deployment: Callable[..., Deployment]) -> None:
    with running_receiver() as receiver:
        env = _env(PARLEY_AUTH="keys")
        deployment = make_deployment(**env)
        token = create_key(deployment.env | env, "--role", "service", "--callback-url", receiver.url)
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=deployment.api.base_url, timeout=30, headers=auth) as client:
            sent = client.post("/v1/chat", json={"user_id": "alice", "message": "hi", "wait": 10}).json()
            assert sent["status"] == "completed"
            delivered = _wait_for(client, sent["message_id"], lambda d: d["status"] != "pending")
            assert delivered["url"] == receiver.url
            assert delivered["status"] == "delivered"
        [got] = receiver.received
        assert got.verified
        assert got.json["message_id"] == sent["message_id"]
    refused = httpx.post(
        f"{deployment.api.base_url}/v1/chat",
        json={"user_id": "alice", "message": "hi", "callback_url": "http://10.0.0.1/x"},
        headers=auth,
        timeout=30,
    )
    assert refused.status_code == 422
    # A key whose default is not allowed is refused when made, before anything is stored.
    made = keys_create(deployment.env | env, "--role", "service", "--callback-url", "http://10.0.0.1/x")
    assert made.returncode == 2
    assert "--callback-url" in made.stderr
    assert "not in PARLEY_WEBHOOK_ALLOWED_HOSTS" in made.stderr


def test_each_delivery_is_sent_once_whichever_process_ends_it(
    make_deployment: Callable[..., Deployment],
) -> None:
    # With the queue: two API instances and two workers, each with a deliverer looking every 0.2 s.
    with running_receiver() as receiver:
        deployment = make_deployment(**_env())
        urls = deployment.base_urls

        def post(index: int) -> str:
            with httpx.Client(base_url=urls[index % len(urls)], timeout=30) as client:
                answer = client.post(
                    "/v1/chat",
                    json={
                        "user_id": "alice",
                        "message": f"m{index}",
                        "callback_url": receiver.url,
                        "wait": 0,
                    },
                )
                assert answer.status_code == 202, answer.text
                message_id: str = answer.json()["message_id"]
                return message_id

        with ThreadPoolExecutor(max_workers=8) as pool:
            sent = list(pool.map(post, range(40)))
        wait_until(lambda: receiver.count() >= 40, timeout=60, what="40 deliveries")
        with httpx.Client(base_url=deployment.api.base_url, timeout=30) as client:
            delivered = [_wait_for(client, m, lambda d: d["status"] == "delivered") for m in sent]
    ids = [r.webhook_id for r in receiver.received]
    assert sorted(ids) == sorted(d["webhook_id"] for d in delivered)
    assert len(set(ids)) == 40
    assert all(r.verified for r in receiver.received)
    assert sorted(r.json["message_id"] for r in receiver.received) == sorted(sent)
