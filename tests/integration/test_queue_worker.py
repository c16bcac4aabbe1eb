"""The queue worker (``runners/queue.py``) when its database connections are lost: it must go back to
being woken by notifications, not settle for polling. The worker runs in the test's event loop (see
``harness_factory``); the database is real, and what it sees is read from ``pg_stat_activity``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from parley.runners import queue
from tests.backends import ADMIN_URL, Backend
from tests.waiting import wait_until_async

pytestmark = pytest.mark.queue_only

_JOB_LISTENER = 'LISTEN "procrastinate_any_queue_v1";'


async def _admin() -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(ADMIN_URL, autocommit=True)


async def _listener_pids(admin: psycopg.AsyncConnection[Any], database: str) -> list[int]:
    """The backends of ``database`` that listen for new jobs (procrastinate's listener)."""
    cursor = await admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query = %s", (database, _JOB_LISTENER)
    )
    return [int(row[0]) for row in await cursor.fetchall()]


@pytest.fixture
async def admin() -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    conn = await _admin()
    yield conn
    await conn.close()


async def _drop_the_listener(admin: psycopg.AsyncConnection[Any], database: str) -> None:
    """Drop the worker's job listener and refuse new connections until it has given up reconnecting (as
    during a restart); then take connections again."""
    await wait_until_async(
        lambda: _has_listener(admin, database), timeout=20, what="the worker's job listener"
    )
    [listener_pid] = await _listener_pids(admin, database)
    listener = next(t for t in asyncio.all_tasks() if t.get_name() == "listener" and not t.done())
    refuse = sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}")
    await admin.execute(refuse.format(sql.Identifier(database), sql.SQL("false")))
    try:
        await admin.execute("SELECT pg_terminate_backend(%s)", (listener_pid,))

        async def gave_up() -> bool:
            return listener.done()

        await wait_until_async(gave_up, timeout=30, what="the listener to fail to reconnect")
    finally:
        await admin.execute(refuse.format(sql.Identifier(database), sql.SQL("true")))


def _database(backend: Backend) -> str:
    assert backend.database_url is not None
    return backend.database_url.rpartition("/")[2]


async def test_the_worker_listens_for_jobs_again_after_the_database_dropped_it(
    harness_factory: Any, make_settings: Any, backend: Backend, admin: psycopg.AsyncConnection[Any]
) -> None:
    """procrastinate's listener gives up when it cannot reconnect; unnoticed, the worker then found new
    jobs only by polling, seconds late, for the rest of its life (procrastinate issue #1597). It must be
    restarted, and listen again once the database takes connections."""
    harness = await harness_factory(make_settings())
    assert (await harness.chat(message="hello", wait=30)).json()["status"] == "completed"
    await _drop_the_listener(admin, _database(backend))
    await wait_until_async(
        lambda: _has_listener(admin, _database(backend)),
        timeout=20,
        what="a job listener on the database again",
    )
    assert (await harness.chat(message="after", wait=30)).json()["status"] == "completed"


async def test_each_outage_starts_with_the_shortest_backoff(
    harness_factory: Any,
    make_settings: Any,
    backend: Backend,
    admin: psycopg.AsyncConnection[Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The restart backoff doubles while the database stays away, but a worker that had been working
    before it stopped faces a new outage: without the reset, every restart of the database over a
    process's life made the next recovery wait longer (up to 10 s without any worker)."""
    monkeypatch.setattr(queue, "_WORKED_SECONDS", 0.0)  # every run before a stop counts as working
    caplog.set_level(logging.WARNING, logger="parley.runners.queue")
    await harness_factory(make_settings())
    for _ in range(2):
        await _drop_the_listener(admin, _database(backend))
        await wait_until_async(
            lambda: _has_listener(admin, _database(backend)),
            timeout=20,
            what="a job listener on the database again",
        )
    restarts = [r.getMessage() for r in caplog.records if "starting it again" in r.getMessage()]
    assert len(restarts) >= 2
    assert all(message.endswith("starting it again in 0.5s") for message in restarts), restarts


async def _has_listener(admin: psycopg.AsyncConnection[Any], database: str) -> bool:
    return bool(await _listener_pids(admin, database))
