"""Parley's PostgreSQL connection pools (storage/postgres_db.py): what a pooled connection costs before
it is handed out, and that one the server dropped is not handed out. Real server, real connections;
what happened on the server side is read from ``pg_stat_activity``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from parley.runners.queue import defer, queue_app
from parley.storage.postgres_db import PostgresDatabase
from tests.backends import ADMIN_URL, Backend

pytestmark = pytest.mark.postgres_only


@pytest.fixture
async def db(backend: Backend) -> AsyncIterator[PostgresDatabase]:
    assert backend.database_url is not None
    database = PostgresDatabase(backend.database_url, min_size=1, max_size=1)
    await database.open(migrate=False)
    yield database
    await database.close()


def _last_query(pid: int) -> str | None:
    """The last statement the server ran for backend ``pid`` (None once the backend is gone)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        row = admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return None if row is None else str(row[0])


async def _backend_pid(db: PostgresDatabase) -> int:
    async with db.pool.connection() as conn:
        return int(conn.info.backend_pid)


async def test_a_healthy_connection_is_handed_out_without_a_round_trip(db: PostgresDatabase) -> None:
    """Asking the server before every checkout cost a round trip per transaction and per checkpoint
    call; an idle connection with nothing to read is handed out as it is."""
    async with db.pool.connection() as conn:
        pid = conn.info.backend_pid
        await conn.execute("SELECT 'parley-marker'")
    async with db.pool.connection():  # the pool's only connection, checked again before it is handed out
        pass
    assert _last_query(pid) == "SELECT 'parley-marker'"


async def test_a_connection_the_server_dropped_is_not_handed_out(db: PostgresDatabase) -> None:
    pid = await _backend_pid(db)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + 10
    while _last_query(pid) is not None:  # the backend has said goodbye and closed the connection
        assert time.monotonic() < deadline, "the backend did not exit"
        time.sleep(0.02)
    async with db.read() as tx:
        row = await tx.one("SELECT 1 AS one")
    assert row == {"one": 1}
    assert await _backend_pid(db) != pid


async def test_one_statement_refuses_a_second_statement(db: PostgresDatabase) -> None:
    """Outside a transaction the first statement has committed before the second runs: the two would not
    be atomic together, so the second is refused rather than run."""
    async with db.one_statement(writes=True) as tx:
        assert await tx.one("SELECT 1 AS one") == {"one": 1}
        with pytest.raises(RuntimeError, match="second statement"):
            await tx.one("SELECT 2 AS two")


async def test_one_statement_runs_outside_a_transaction(db: PostgresDatabase) -> None:
    """What makes it cheaper: no ``BEGIN``/``COMMIT`` around the statement."""

    async def status() -> Any:
        async with db.one_statement(writes=False) as tx:
            return await tx.one("SELECT now() = statement_timestamp() AS outside")

    # Inside a transaction now() is the transaction's start, before the statement's own timestamp.
    assert await status() == {"outside": True}


async def test_the_job_queue_defers_a_job_in_one_statement(backend: Backend) -> None:
    """procrastinate's statements are one function call each: its pooled connections are in autocommit
    mode and checked like Parley's, so a defer is that statement alone — no BEGIN, no COMMIT and no
    check query around it (four round trips where one does)."""
    assert backend.database_url is not None
    app = queue_app(backend.database_url, pool_size=1)
    async with app.open_async():
        pool: Any = app.connector.pool
        async with pool.connection() as conn:
            pid = conn.info.backend_pid
        await defer(app, "session-1")
        assert "procrastinate_defer_jobs_v1" in str(_last_query(pid))
        async with pool.connection():  # checked again before it is handed out: still nothing run
            pass
        assert "procrastinate_defer_jobs_v1" in str(_last_query(pid))
