"""Serving a process's metrics beside its work: the separate bind address (``PARLEY_METRICS_ADDRESS``)
and the background refresh of the storage-wide gauges."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack

from prometheus_client import start_http_server

from parley.core.errors import ConfigurationError
from parley.core.ports import Store
from parley.observability.metrics import Metrics
from parley.settings import Settings

logger = logging.getLogger(__name__)

_STOP_SECONDS = 5.0


def serve_metrics(metrics: Metrics, *, host: str, port: int, stack: AsyncExitStack) -> int:
    """Serve ``metrics`` on ``host:port`` until ``stack`` closes; the port bound (0 picks one).

    prometheus_client's own HTTP server, in a thread: a scrape reads the registry (thread-safe) and never
    waits for the event loop, so metrics answer even when the loop is busy — which is when they matter.
    ``ConfigurationError`` if the address cannot be bound.
    """
    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        raise ConfigurationError(f"cannot serve metrics on {host}:{port} ({exc.strerror or exc})") from exc

    def _close() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    stack.callback(_close)
    bound = int(server.server_address[1])
    logger.info("metrics served on %s:%d/metrics", host, bound)
    return bound


async def refresh_backlog(metrics: Metrics, store: Store, *, every: float, stack: AsyncExitStack) -> None:
    """Keep the storage-wide gauges fresh (first read now) until ``stack`` closes."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        metrics.refresh_forever(store, every=every, stop=stop), name="parley-metrics-backlog"
    )

    async def _stop() -> None:
        stop.set()
        # A refresh under way is one short query; should storage hang, do not hang the shutdown with it.
        try:
            await asyncio.wait_for(asyncio.shield(task), _STOP_SECONDS)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    stack.push_async_callback(_stop)


async def expose_metrics(
    metrics: Metrics, *, store: Store, settings: Settings, stack: AsyncExitStack
) -> None:
    """What a process that counts does beside its work, until ``stack`` closes: keep the storage-wide
    gauges fresh and, with ``PARLEY_METRICS_ADDRESS``, serve them on their own port. Nothing when metrics
    are off."""
    if not metrics.enabled:
        return
    await refresh_backlog(metrics, store, every=settings.metrics_refresh_seconds, stack=stack)
    if (bind := settings.metrics_bind) is not None:
        serve_metrics(metrics, host=bind[0], port=bind[1], stack=stack)
