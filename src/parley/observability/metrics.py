"""``Metrics``: one process's Prometheus instruments, in a registry of its own (never the global one:
tests build many apps in one process, and each must count only its own turns).

What it costs the hot path: an HTTP request is a counter increment and a histogram observation under
label children cached here (no label lookup per request); a turn is a handful of observations at its end,
from figures the usage accounting already collected (nothing per token). The gauges of running turns
is read at scrape time from the runner's own count; queued messages and pending interrupts come from
storage, refreshed by a background task every ``refresh_seconds`` — never a query per request or per scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from parley.core.errors import StorageUnavailable, first_line
from parley.core.ports import Store
from parley.core.records import MessageRecord
from parley.core.usage import TurnObserver

logger = logging.getLogger(__name__)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
"""The exposition format's media type."""

UNMATCHED_ROUTE: Final = "unmatched"
"""The ``route`` label of a request no route matched (a 404 for an unknown path): raw paths are never
labels, so a scanner cannot grow the series without bound."""

_TURN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_QUEUED_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The instruments of one process (see the module docstring)."""

    def __init__(self, *, enabled: bool = True) -> None:
        # Off (PARLEY_METRICS_ENABLED=false): nothing is counted, and GET /metrics is 404.
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.turns = Counter(
            "parley_turns", "Turns ended, by terminal status.", ["outcome"], registry=registry
        )
        self.turn_seconds = Histogram(
            "parley_turn_duration_seconds",
            "A turn's duration, from its first start to its stored end (retries included).",
            ["outcome"],
            buckets=_TURN_BUCKETS,
            registry=registry,
        )
        self.queued_seconds = Histogram(
            "parley_turn_queued_seconds",
            "How long a message waited before its turn first started (started_at - created_at).",
            buckets=_QUEUED_BUCKETS,
            registry=registry,
        )
        self.model_seconds = Histogram(
            "parley_model_call_duration_seconds",
            "Each chat model call's latency.",
            buckets=_TURN_BUCKETS,
            registry=registry,
        )
        self.model_calls = Counter(
            "parley_model_calls", "Chat model calls, by result.", ["result"], registry=registry
        )
        self.model_tokens = Counter(
            "parley_model_tokens",
            "Tokens of chat model calls, by direction.",
            ["direction"],
            registry=registry,
        )
        self.running = Gauge("parley_turns_running", "Turns running in this process now.", registry=registry)
        self.queued = Gauge(
            "parley_turns_queued",
            "Messages queued, database-wide (refreshed every few seconds).",
            registry=registry,
        )
        self.pending_interrupts = Gauge(
            "parley_interrupts_pending",
            "Interrupts waiting for an answer, database-wide (refreshed every few seconds).",
            registry=registry,
        )
        self.http_requests = Counter(
            "parley_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_seconds = Histogram(
            "parley_http_request_duration_seconds",
            "HTTP request duration (to the end of the response body), by method and route template.",
            ["method", "route"],
            buckets=_HTTP_BUCKETS,
            registry=registry,
        )
        self.webhook_attempts = Counter(
            "parley_webhook_attempts",
            "Webhook delivery attempts made by this process, by outcome (delivered, retry, failed).",
            ["outcome"],
            registry=registry,
        )
        self.webhook_delay_seconds = Histogram(
            "parley_webhook_delivery_delay_seconds",
            "From a message's end to its webhook's delivery (the receiver's 2xx), retries included.",
            buckets=_QUEUED_BUCKETS,
            registry=registry,
        )
        self._request_counters: dict[tuple[str, str, str], Counter] = {}
        self._request_timers: dict[tuple[str, str], Histogram] = {}
        self._outcomes: dict[str, tuple[Counter, Histogram]] = {}
        self._tokens_in = self.model_tokens.labels(direction="input")
        self._tokens_out = self.model_tokens.labels(direction="output")
        self._calls_ok = self.model_calls.labels(result="ok")
        self._calls_failed = self.model_calls.labels(result="error")

    def render(self) -> bytes:
        """The registry in Prometheus's text format."""
        return generate_latest(self.registry)

    def count_running(self, source: Callable[[], int]) -> None:
        """Read the running-turns gauge from ``source`` (the runner's own count) at each scrape."""
        self.running.set_function(source)

    def request_done(self, *, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered."""
        if not self.enabled:
            return
        key = (method, route, str(status))
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self._request_counters[key] = self.http_requests.labels(*key)
        counter.inc()
        timer = self._request_timers.get(key[:2])
        if timer is None:
            timer = self._request_timers[key[:2]] = self.http_seconds.labels(method, route)
        timer.observe(seconds)

    def turn_ended(self, final: MessageRecord, observer: TurnObserver) -> None:
        """One turn's stored end: its outcome, durations and what its model calls cost."""
        if not self.enabled:
            return
        outcome = final.status.value
        children = self._outcomes.get(outcome)
        if children is None:
            children = self._outcomes[outcome] = (
                self.turns.labels(outcome),
                self.turn_seconds.labels(outcome),
            )
        children[0].inc()
        if final.started_at is not None:
            end = final.finished_at or final.updated_at
            children[1].observe(max((end - final.started_at).total_seconds(), 0.0))
            self.queued_seconds.observe(max((final.started_at - final.created_at).total_seconds(), 0.0))
        for seconds in observer.call_seconds:
            self.model_seconds.observe(seconds)
        if observer.calls:
            self._calls_ok.inc(observer.calls - observer.errors)
            self._calls_failed.inc(observer.errors)
            self._tokens_in.inc(observer.input_tokens)
            self._tokens_out.inc(observer.output_tokens)

    def webhook_attempted(self, *, outcome: str, delay_seconds: float | None) -> None:
        """One delivery attempt; with ``delay_seconds`` (it was delivered), how long after its message
        ended."""
        if not self.enabled:
            return
        self.webhook_attempts.labels(outcome).inc()
        if delay_seconds is not None:
            self.webhook_delay_seconds.observe(max(delay_seconds, 0.0))

    async def refresh_backlog(self, store: Store) -> None:
        """Read the queued and pending-interrupt counts from storage once."""
        backlog = await store.backlog()
        self.queued.set(backlog.queued_messages)
        self.pending_interrupts.set(backlog.pending_interrupts)

    async def refresh_forever(self, store: Store, *, every: float, stop: asyncio.Event) -> None:
        """Refresh the storage gauges every ``every`` seconds until ``stop`` is set; a failure keeps the
        last figures (the next round tries again).

        Stopped by an event, not by cancelling the task: a cancel that lands inside a query can come back
        out of the driver as a query error — which this loop must survive, and did, refreshing on for ever
        while the app's shutdown waited for it."""
        while not stop.is_set():
            try:
                await self.refresh_backlog(store)
            except StorageUnavailable as exc:
                logger.warning("could not refresh the backlog metrics (%s)", first_line(exc))
            except Exception:
                logger.exception("could not refresh the backlog metrics")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
