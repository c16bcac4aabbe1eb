"""LangGraph's own checkpoint savers for the configured storage: SQLite or PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from parley.storage.postgres_db import check_if_dropped

# Instances starting together run the saver's own migrations one at a time (any constant works).
_SETUP_LOCK_KEY = 0x7061726C6563


@asynccontextmanager
async def sqlite_checkpointer(path: Path) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """LangGraph's own SQLite saver, on its own file (``path``) and its own connection.

    Not Parley's file: the saver holds a write transaction open across ``await``s, so on a shared file
    Parley's statements, which run inline on the event loop, would wait on a lock only the event loop can
    release (docs/architecture.md, Storage).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(path)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA busy_timeout=30000")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        yield saver
    finally:
        await conn.close()


class _NoLock(contextlib.AbstractAsyncContextManager[None]):
    """Stands in for the saver's lock when every call takes its own pooled connection."""

    async def __aexit__(self, *exc: object) -> None:
        return None


@asynccontextmanager
async def postgres_checkpointer(
    url: str, *, max_size: int = 10, setup: bool = True
) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """LangGraph's PostgreSQL saver on its own connection pool.

    The saver guards every call with one ``asyncio.Lock``, which a single shared connection needs but a
    pool does not: each call takes its own connection (upstream issue #7259). With the lock every
    session's checkpoint writes in this process would queue behind one another, so it is replaced
    by a no-op here (bench/README.md measures the difference).
    """
    pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        check=check_if_dropped,
        name="parley-checkpoints",
    )
    await pool.open(wait=True, timeout=10.0)
    try:
        saver = AsyncPostgresSaver(pool)
        saver.lock = _NoLock()  # type: ignore[assignment]
        if setup:
            async with pool.connection() as conn:
                await conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK_KEY,))
                try:
                    await saver.setup()
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK_KEY,))
        yield saver
    finally:
        await pool.close()
