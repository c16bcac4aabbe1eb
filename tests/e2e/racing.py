"""Real races against real servers: requests from separate threads, each on its own connection, released
at once, against a deployment made by a factory.

A deployment is whatever serves the API on some storage: today the embedded mode (one ``parley serve`` on a
SQLite data dir, where racing requests interleave at the server's ``await``s and each store call is atomic);
later PostgreSQL with several API processes on one database, where the database must arbitrate. Racing
tests take a deployment factory, so that one test covers every backend listed in ``DEPLOYMENTS``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from tests.e2e.server import ServerProcess


class Deployment(Protocol):
    """Parley serving one database, from one or more API processes."""

    @property
    def base_urls(self) -> Sequence[str]:
        """One per API process; racers spread over them."""

    def count_rows(self, table: str, **equal: str) -> int:
        """Rows of one of Parley's tables whose columns equal the given values."""

    def close(self) -> None:
        """Stop every process."""


class SqliteDeployment:
    """The embedded mode: one ``parley serve`` process on a SQLite data dir."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self._data_dir = data_dir
        self._server = ServerProcess(data_dir, env=env).start()

    @property
    def base_urls(self) -> Sequence[str]:
        return [self._server.base_url]

    def count_rows(self, table: str, **equal: str) -> int:
        where = " AND ".join(f"{column} = ?" for column in equal) or "1"
        with closing(sqlite3.connect(self._data_dir / "parley.sqlite")) as conn:
            count: int = conn.execute(
                f"SELECT count(*) FROM {table} WHERE {where}", tuple(equal.values())
            ).fetchone()[0]
        return count

    def close(self) -> None:
        self._server.kill()


DeploymentFactory = Callable[[Path, dict[str, str]], Deployment]
DEPLOYMENTS: dict[str, DeploymentFactory] = {"sqlite": SqliteDeployment}


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
) -> list[Answer]:
    """Send ``request(i)`` — (method, path, JSON body) — from ``racers`` threads at once.

    Each thread opens its own connection first (a ``/healthz`` call), so that the start line is not a race
    for connection setup; then a barrier releases them together.
    """
    start = threading.Barrier(racers)

    def run(i: int) -> Answer:
        method, path, body = request(i)
        base_url = deployment.base_urls[i % len(deployment.base_urls)]
        with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
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
