"""``parley worker``: a process that runs turns from the queue until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from contextlib import AsyncExitStack

from opentelemetry.sdk.trace import TracerProvider

from parley.assembly import (
    build_executor,
    hold_runner_lock,
    open_deliverer,
    open_journal,
    open_retention,
)
from parley.core.events import EventBus
from parley.observability.exposition import expose_metrics
from parley.observability.metrics import Metrics
from parley.observability.tracing import Tracing
from parley.observability.turns import TurnInstruments
from parley.runners.queue import QueueWorker, queue_app
from parley.runners.relay import PostgresRelay
from parley.runners.turn_tasks import TurnTasks
from parley.settings import Settings
from parley.storage.factory import open_storage

logger = logging.getLogger(__name__)


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    metrics: Metrics | None = None,
    tracer_provider: TracerProvider | None = None,
) -> None:
    """Open storage, the model and the graph; run jobs until ``stop`` is set (by default: until SIGTERM
    or SIGINT); close everything. ``ready`` is set once jobs are being taken. The worker's turns count in
    ``metrics`` (a fresh ``Metrics`` by default; served on ``PARLEY_METRICS_ADDRESS`` when set) and are
    traced as ``OTEL_*`` asks, or by ``tracer_provider`` (tests).

    ``ConfigurationError`` (before any job runs) if storage, the model, the graph or the metrics address
    cannot be used.
    """
    assert settings.database_url is not None
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    metrics = Metrics(enabled=settings.metrics_enabled) if metrics is None else metrics
    async with AsyncExitStack() as stack:
        tracing = Tracing.opened(stack, tracer_provider)
        storage = await open_storage(settings, stack)
        await hold_runner_lock(settings, stack, worker=True)
        bus = EventBus()
        journal = await open_journal(settings, storage, bus, stack, runs_turns=True)
        executor = build_executor(
            settings, storage, journal, telemetry=TurnInstruments(metrics=metrics, tracing=tracing)
        )
        await open_retention(settings, storage, executor, stack)
        app = queue_app(settings.database_url, pool_size=settings.database_pool_size)
        turns = TurnTasks(executor)
        metrics.count_running(lambda: len(turns))
        await expose_metrics(metrics, store=storage.store, settings=settings, stack=stack)
        await open_deliverer(settings, storage, stack, metrics=metrics)
        worker = QueueWorker(
            app=app,
            store=storage.store,
            turns=turns,
            concurrency=settings.worker_concurrency,
            stalled_seconds=settings.worker_stalled_seconds,
            grace_seconds=settings.shutdown_grace_seconds,
            name=f"{socket.gethostname()}-{os.getpid()}",
        )
        relay = PostgresRelay(
            url=settings.database_url, bus=bus, receive_events=False, on_cancel=worker.cancel
        )
        await relay.start()
        stack.push_async_callback(relay.stop)
        await stack.enter_async_context(app.open_async())
        logger.info(
            "parley worker ready: storage=%s concurrency=%d graphs=%s model=%s",
            settings.storage_label,
            settings.worker_concurrency,
            ",".join(f"{name}={reference}" for name, reference in settings.graph_references()),
            settings.model_name,
        )
        if ready is not None:
            ready.set()
        await worker.run(stop)
    logger.info("parley worker stopped")
