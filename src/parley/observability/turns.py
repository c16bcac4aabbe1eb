"""``TurnInstruments``: the ``TurnTelemetry`` of a process that runs turns — metrics always, spans when
tracing is on (see ``core/telemetry.py`` for what the executor expects)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from parley.core.records import MessageRecord
from parley.core.statuses import MessageStatus
from parley.core.telemetry import TurnScope
from parley.core.usage import TurnObserver
from parley.observability.metrics import Metrics
from parley.observability.tracing import GraphSpans, Tracing


class _Measured:
    """A turn's scope without tracing: one object shared by every turn."""

    callbacks: Sequence[BaseCallbackHandler] = ()

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def ended(self, final: MessageRecord, observer: TurnObserver) -> None:
        self._metrics.turn_ended(final, observer)


class _Traced:
    """A turn's scope with its span and the handler that makes its node and model spans."""

    def __init__(self, metrics: Metrics, tracing: Tracing, span: Span) -> None:
        self._metrics = metrics
        self._span = span
        self.callbacks: Sequence[BaseCallbackHandler] = (GraphSpans(tracing.tracer, span),)

    def ended(self, final: MessageRecord, observer: TurnObserver) -> None:
        self._metrics.turn_ended(final, observer)
        self._span.set_attribute("parley.status", final.status.value)
        self._span.set_attribute("parley.attempts", final.attempts)
        if final.status is MessageStatus.FAILED:
            kind = (final.error or {}).get("type", "failed")
            self._span.set_status(Status(StatusCode.ERROR, str(kind)))


class TurnInstruments:
    """Metrics and traces of the turns this process runs."""

    def __init__(self, *, metrics: Metrics, tracing: Tracing) -> None:
        self._metrics = metrics
        self._tracing = tracing
        self._measured = _Measured(metrics)

    @contextmanager
    def turn(self, message: MessageRecord) -> Iterator[TurnScope]:
        """See ``TurnTelemetry.turn``."""
        if not self._tracing.enabled:
            yield self._measured
            return
        span = self._tracing.start_turn(
            message_id=message.message_id, session_id=message.session_id, kind=message.kind.value
        )
        with trace.use_span(span, end_on_exit=True):
            yield _Traced(self._metrics, self._tracing, span)
