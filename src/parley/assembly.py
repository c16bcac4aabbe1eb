"""Building Parley's pieces from settings, shared by ``parley serve`` and ``parley worker``: the turn
executor (model + graph + checkpointer + store + bus), the runner an API instance uses, and the guard
that keeps a second in-process runner off a PostgreSQL database."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import psycopg

from parley.core.context import GraphContext
from parley.core.errors import ConfigurationError
from parley.core.events import EventBus
from parley.core.graph_loader import load_graph
from parley.core.ports import Runner
from parley.core.turns import TurnExecutor, TurnPolicy
from parley.models.factory import build_chat_model
from parley.runners.inprocess import InProcessRunner
from parley.runners.queue import QueueRunner, queue_app
from parley.runners.relay import PostgresRelay
from parley.settings import Settings
from parley.storage.factory import Storage

# Held by the one process that runs turns in-process on a PostgreSQL database (any constant works).
_INPROCESS_LOCK_KEY = 0x7061726C6569


def build_executor(settings: Settings, storage: Storage, bus: EventBus) -> TurnExecutor:
    """The chat model and the graph, and the executor that runs their turns.

    ``ConfigurationError`` if the model cannot be built or the graph cannot be loaded.
    """
    model = build_chat_model(settings)
    graph = load_graph(
        settings.graph,
        context=GraphContext(model=model, settings=settings, store=storage.store),
        checkpointer=storage.checkpointer,
    )
    return TurnExecutor(
        graph=graph,
        checkpointer=storage.checkpointer,
        store=storage.store,
        bus=bus,
        policy=TurnPolicy(
            durability=settings.durability,
            max_attempts=settings.max_attempts,
            retry_base_seconds=settings.retry_base_seconds,
            retry_max_seconds=settings.retry_max_seconds,
            timeout_seconds=settings.turn_timeout_seconds,
            interrupt_before=tuple(settings.interrupt_before),
            interrupt_after=tuple(settings.interrupt_after),
        ),
    )


async def hold_inprocess_lock(settings: Settings, stack: AsyncExitStack) -> None:
    """On PostgreSQL, one process at most runs turns in-process: two would recover the same pending
    messages and run their turns twice. Held on a connection of its own for the process's lifetime
    (the server drops it when the process dies); ``ConfigurationError`` if another process holds it."""
    if settings.backend != "postgres":
        return  # SQLite's lock file does the same (storage/sqlite_db.py)
    assert settings.database_url is not None
    conn: psycopg.AsyncConnection[Any] = await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True
    )
    stack.push_async_callback(conn.close)
    cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_INPROCESS_LOCK_KEY,))
    row = await cursor.fetchone()
    if not row or not row[0]:
        raise ConfigurationError(
            "another Parley process runs turns in-process on this database; to run several, use "
            "`parley serve --runner queue` with `parley worker` processes"
        )


async def build_runner(
    settings: Settings, storage: Storage, bus: EventBus, stack: AsyncExitStack
) -> tuple[Runner, TurnExecutor | None]:
    """The runner of an API instance (not started), and its executor when it runs turns itself."""
    if settings.runner == "queue":
        assert settings.database_url is not None
        relay = PostgresRelay(url=settings.database_url, bus=bus)
        await relay.start()
        stack.push_async_callback(relay.stop)
        app = queue_app(settings.database_url, pool_size=settings.database_pool_size)
        return QueueRunner(app=app, relay=relay), None
    await hold_inprocess_lock(settings, stack)
    executor = build_executor(settings, storage, bus)
    return InProcessRunner(
        store=storage.store, executor=executor, max_concurrent=settings.max_concurrent_turns
    ), executor
