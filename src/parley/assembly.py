"""Building Parley's pieces from settings, shared by ``parley serve`` and ``parley worker``: the turn
executor (model + graph + checkpointer + store + bus), the runner an API instance uses, and the lock
that decides who may run turns on a PostgreSQL database."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import psycopg
from langchain_core.language_models import BaseChatModel

from parley.core.context import GraphContext
from parley.core.errors import ConfigurationError
from parley.core.events import EventBus
from parley.core.graph_loader import load_programs
from parley.core.journal import EventJournal
from parley.core.ports import Runner
from parley.core.programs import ProgramSet
from parley.core.retention import CheckpointRetention
from parley.core.telemetry import NO_TELEMETRY, TurnTelemetry
from parley.core.turns import TurnExecutor, TurnPolicy
from parley.models.factory import build_chat_model
from parley.models.scripted import ScriptedChatModel
from parley.observability.metrics import Metrics
from parley.runners.inprocess import InProcessRunner
from parley.runners.queue import QueueRunner, queue_app
from parley.runners.relay import PostgresRelay
from parley.settings import Settings
from parley.storage.checkpoint_pruning import open_pruner
from parley.storage.factory import Storage
from parley.storage.webhook_outbox import SqlOutbox
from parley.webhooks.deliverer import LEASE_MARGIN_SECONDS, Deliverer, RetryPolicy
from parley.webhooks.destinations import DestinationPolicy
from parley.webhooks.sender import Sender
from parley.webhooks.signing import Signer

# Held exclusively by an in-process runner on a PostgreSQL database, shared by workers (any constant works).
_RUNNER_LOCK_KEY = 0x7061726C6569


def build_executor(
    settings: Settings, storage: Storage, journal: EventJournal, *, telemetry: TurnTelemetry = NO_TELEMETRY
) -> TurnExecutor:
    """The chat model and the graphs, and the executor that runs their turns.

    ``ConfigurationError`` if the model cannot be built or a graph cannot be loaded.
    """
    return TurnExecutor(
        programs=_programs(settings, storage, build_chat_model(settings)),
        checkpointer=storage.checkpointer,
        store=storage.store,
        events=journal,
        policy=TurnPolicy(
            durability=settings.durability,
            max_attempts=settings.max_attempts,
            retry_base_seconds=settings.retry_base_seconds,
            retry_max_seconds=settings.retry_max_seconds,
            timeout_seconds=settings.turn_timeout_seconds,
            interrupt_before=tuple(settings.interrupt_before),
            interrupt_after=tuple(settings.interrupt_after),
        ),
        telemetry=telemetry,
    )


def load_catalog(settings: Settings, storage: Storage) -> ProgramSet:
    """The graphs an API instance that runs no turns (``--runner queue``) serves, for ``GET /v1/graphs``
    and for checking the ``graph`` of a request: loaded as the workers load them, but around a scripted
    model that is never called — the real one (the local model's weights above all) is the workers' to
    hold. ``ConfigurationError`` if a graph cannot be loaded: better here than at the first turn."""
    return _programs(settings, storage, ScriptedChatModel())


def _programs(settings: Settings, storage: Storage, model: BaseChatModel) -> ProgramSet:
    return load_programs(
        settings.graph_references(),
        context=GraphContext(model=model, settings=settings, store=storage.store),
        checkpointer=storage.checkpointer,
    )


async def hold_runner_lock(settings: Settings, stack: AsyncExitStack, *, worker: bool) -> None:
    """Who may run turns on a PostgreSQL database: one in-process runner alone, or any number of queue
    workers — never both. Two in-process runners would each recover the same pending messages, and an
    in-process runner beside workers would run a session's turns outside the queue's per-session lock;
    either way turns would run twice. The in-process runner takes an advisory lock exclusively, each worker
    shares it. Held on a connection of its own for the process's lifetime (the server drops it when the
    process dies); ``ConfigurationError`` if the other kind holds it."""
    if settings.backend != "postgres":
        return  # SQLite's lock file keeps a second process off the data (storage/sqlite_db.py)
    assert settings.database_url is not None
    conn: psycopg.AsyncConnection[Any] = await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True
    )
    stack.push_async_callback(conn.close)
    take = "pg_try_advisory_lock_shared" if worker else "pg_try_advisory_lock"
    cursor = await conn.execute(f"SELECT {take}(%s)".encode(), (_RUNNER_LOCK_KEY,))
    row = await cursor.fetchone()
    if row and row[0]:
        return
    if worker:
        raise ConfigurationError(
            "a `parley serve` runs turns in-process on this database; start it with `--runner queue` "
            "before starting workers"
        )
    raise ConfigurationError(
        "another Parley process runs turns on this database (in-process, or `parley worker`s); to run "
        "several, use `parley serve --runner queue` with `parley worker` processes"
    )


async def open_journal(
    settings: Settings, storage: Storage, bus: EventBus, stack: AsyncExitStack, *, runs_turns: bool
) -> EventJournal:
    """The process's event journal, started (and stopped by ``stack``); a process that runs turns also
    prunes old events."""
    journal = EventJournal(
        store=storage.store,
        bus=bus,
        retention_seconds=settings.event_retention_seconds,
        prune=runs_turns,
    )
    await journal.start()
    stack.push_async_callback(journal.stop)
    return journal


async def open_retention(
    settings: Settings, storage: Storage, executor: TurnExecutor, stack: AsyncExitStack
) -> CheckpointRetention | None:
    """Checkpoint retention for a process that runs turns (started, and stopped by ``stack``); None when
    ``PARLEY_CHECKPOINT_KEEP`` is 0. ``ConfigurationError`` if the saver's tables are not the ones
    pruning knows."""
    if settings.checkpoint_keep == 0:
        return None
    pruner = await open_pruner(storage.checkpointer, storage.store, backend=settings.backend)
    retention = CheckpointRetention(
        pruner=pruner,
        keep=settings.checkpoint_keep,
        interval_seconds=settings.checkpoint_prune_interval_seconds,
    )
    executor.on_turn_end(retention.note)
    await retention.start()
    stack.push_async_callback(retention.stop)
    return retention


async def build_runner(
    settings: Settings,
    storage: Storage,
    journal: EventJournal,
    stack: AsyncExitStack,
    *,
    telemetry: TurnTelemetry = NO_TELEMETRY,
) -> tuple[Runner, ProgramSet]:
    """The runner of an API instance (not started), and the graphs it serves."""
    bus = journal.bus
    if settings.runner == "queue":
        assert settings.database_url is not None
        relay = PostgresRelay(url=settings.database_url, bus=bus)
        await relay.start()
        stack.push_async_callback(relay.stop)
        app = queue_app(settings.database_url, pool_size=settings.database_pool_size)
        return QueueRunner(app=app, relay=relay), load_catalog(settings, storage)
    await hold_runner_lock(settings, stack, worker=False)
    executor = build_executor(settings, storage, journal, telemetry=telemetry)
    await open_retention(settings, storage, executor, stack)
    return InProcessRunner(
        store=storage.store, executor=executor, max_concurrent=settings.max_concurrent_turns
    ), executor.programs


async def open_deliverer(
    settings: Settings, storage: Storage, stack: AsyncExitStack, *, metrics: Metrics | None = None
) -> Deliverer | None:
    """The webhook deliverer of a serving process (``serve`` or ``worker``), started, and stopped by
    ``stack`` before storage closes; None when webhooks are off (``PARLEY_WEBHOOK_ALLOWED_HOSTS`` empty).
    Every process that ends messages runs one: it sends what it ended at once, and what others left."""
    policy = DestinationPolicy.parse(settings.webhook_allowed_hosts)
    if not policy.enabled:
        return None
    sender = Sender(
        policy=policy,
        signer=Signer([secret.get_secret_value() for secret in settings.webhook_secret]),
        timeout_seconds=settings.webhook_timeout_seconds,
        max_connections=settings.webhook_concurrency,
    )
    deliverer = Deliverer(
        outbox=SqlOutbox(storage.db),
        store=storage.store,
        sender=sender,
        retry=RetryPolicy(
            base_seconds=settings.webhook_retry_base_seconds,
            max_seconds=settings.webhook_retry_max_seconds,
            give_up_after=timedelta(hours=settings.webhook_retry_hours),
        ),
        concurrency=settings.webhook_concurrency,
        poll_seconds=settings.webhook_poll_seconds,
        lease_seconds=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS,
        keep=timedelta(days=settings.webhook_keep_days),
        metrics=metrics,
    )
    storage.store.on_delivery_recorded(deliverer.wake)
    await deliverer.start()
    stack.push_async_callback(
        lambda: deliverer.stop(grace=min(settings.shutdown_grace_seconds, settings.webhook_timeout_seconds))
    )
    return deliverer
