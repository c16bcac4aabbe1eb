"""The rate limit against real servers: a burst from one caller, on separate connections released at once,
gets exactly the limit through and ``429`` with ``Retry-After`` for the rest — counted in Redis, so one count
holds across every API instance of a deployment — and every message let through completes."""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx
import pytest
import redis

from tests.conftest import require_service
from tests.e2e.racing import Deployment, most_in_flight, race

REDIS_URL = "redis://127.0.0.1:6379/0"
LIMIT = 6
RACERS = 14


def _redis_available() -> tuple[bool, str]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return False, f"{REDIS_URL}: {exc}"
    return True, ""


def _fresh_loopback_address() -> str:
    """A loopback address of this run's own: the counts in Redis are per caller address, and other test
    runs on this machine may count theirs in the same Redis at the same time."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"


@pytest.fixture
def redis_url() -> str:
    require_service("redis", *_redis_available())
    return REDIS_URL


def test_a_burst_past_the_rate_limit_gets_429s_and_every_accepted_message_completes(
    make_deployment: Callable[..., Deployment], redis_url: str
) -> None:
    deployment = make_deployment(PARLEY_RATE_LIMIT=f"{LIMIT}/minute", PARLEY_RATE_LIMIT_STORAGE=redis_url)
    caller = _fresh_loopback_address()

    answers = race(
        deployment,
        RACERS,
        lambda i: ("POST", "/v1/chat", {"user_id": "alice", "message": f"burst {i}", "wait": 30}),
        local_address=caller,
    )

    assert most_in_flight(answers) >= 2, "the requests did not overlap: nothing raced"
    accepted = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(accepted) == LIMIT, [(a.status_code, a.body) for a in answers]
    assert len(refused) == RACERS - LIMIT, [(a.status_code, a.body) for a in answers]
    assert {a.body["type"] for a in refused} == {"/problems/rate-limited"}
    assert all(1 <= a.body["retry_after"] <= 60 for a in refused), [a.body for a in refused]
    # Every message let through ran to its end; the refused ones left nothing behind.
    assert {a.body["status"] for a in accepted} == {"completed"}
    replies = {a.body["reply"] for a in accepted}
    assert len(replies) == LIMIT, replies
    assert all(reply.startswith("Echo: burst ") for reply in replies), replies
    assert deployment.count_rows("parley_messages") == LIMIT
    assert deployment.count_rows("parley_messages", status="completed") == LIMIT
    assert deployment.count_rows("parley_sessions") == LIMIT

    # The count is the caller's: another address is not held back by it, and health checks never are.
    transport = httpx.HTTPTransport(local_address=_fresh_loopback_address())
    with httpx.Client(base_url=deployment.base_urls[-1], timeout=30, transport=transport) as other:
        assert other.post("/v1/chat", json={"user_id": "bob", "message": "hi"}).status_code == 200
    transport = httpx.HTTPTransport(local_address=caller)
    with httpx.Client(base_url=deployment.base_urls[-1], timeout=30, transport=transport) as same:
        again = same.post("/v1/chat", json={"user_id": "alice", "message": "once more"})
        assert again.status_code == 429
        assert 1 <= int(again.headers["Retry-After"]) <= 60
        assert all(same.get("/healthz").status_code == 200 for _ in range(LIMIT + 1))
