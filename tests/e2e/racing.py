"""Real races against real servers: requests from separate threads, each on its own connection, released
at once, against a deployment made by a factory.

A deployment (``tests/e2e/deployments.py``) is whatever serves the API on some storage: the embedded mode
(one ``parley serve`` on a SQLite data dir, where racing requests interleave at the server's ``await``s and
each store call is atomic), one server on PostgreSQL, and the scale-out mode — two API processes and two
workers on one PostgreSQL database, where the database must arbitrate. Racing tests take a deployment
factory, so that one test covers every backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from tests.e2e.deployments import Deployment


@dataclass(frozen=True)
class Answer:
    """One racer's response, with when it was sent and answered (monotonic clock)."""

    status_code: int
    body: dict[str, Any]
    sent: float
    answered: float


def race(
    deployment: Deployment,
    racers: int,
    request: Callable[[int], tuple[str, str, dict[str, Any]]],
    *,
    headers: dict[str, str] | None = None,
    local_address: str | None = None,
) -> list[Answer]:
    """Send ``request(i)`` — (method, path, JSON body) — from ``racers`` threads at once (from
    ``local_address``, a loopback address, when given).

    Each thread opens its own connection first (a ``/healthz`` call), so that the start line is not a race
    for connection setup; then a barrier releases them together.
    """
    start = threading.Barrier(racers)

    def run(i: int) -> Answer:
        method, path, body = request(i)
        base_url = deployment.base_urls[i % len(deployment.base_urls)]
        transport = httpx.HTTPTransport(local_address=local_address)
        with httpx.Client(base_url=base_url, timeout=30, headers=headers, transport=transport) as client:
            assert client.get("/healthz").status_code == 200
            start.wait(timeout=30)
            sent = time.monotonic()
            response = client.request(method, path, json=body)
            answered = time.monotonic()
        return Answer(response.status_code, response.json(), sent, answered)

    with ThreadPoolExecutor(max_workers=racers) as pool:
        return list(pool.map(run, range(racers)))


def most_in_flight(answers: Sequence[Answer]) -> int:
    """The most requests that were sent and not yet answered at one moment: at least 2, or nothing raced."""
    # At equal times an answer counts before a send, so that touching intervals do not count as overlapping.
    events = sorted([(a.sent, 1) for a in answers] + [(a.answered, -1) for a in answers])
    most = current = 0
    for _, delta in events:
        current += delta
        most = max(most, current)
    return most
