"""The port through which turns are measured and traced (``parley.observability`` implements it).

The executor opens a ``TurnScope`` around each turn: it may carry callback handlers for the graph run (a
span per node and per model call, when tracing is on) and hears the turn's stored end (metrics). With
nothing configured, ``NO_TELEMETRY``'s scope is one shared object with no handlers: a turn then pays for
one context manager and a method call, nothing per token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from langchain_core.callbacks import BaseCallbackHandler

from parley.core.records import MessageRecord
from parley.core.usage import TurnObserver


class TurnScope(Protocol):
    """One turn as telemetry sees it."""

    @property
    def callbacks(self) -> Sequence[BaseCallbackHandler]:
        """Handlers to attach to the turn's graph runs (besides the executor's own observer)."""

    def ended(self, final: MessageRecord, observer: TurnObserver) -> None:
        """The turn's outcome is stored: ``final`` is the terminal record, ``observer`` its model usage."""


class TurnTelemetry(Protocol):
    """Opens a scope around each turn."""

    def turn(self, message: MessageRecord) -> AbstractContextManager[TurnScope]:
        """The scope of ``message``'s turn, entered before it starts and left once it ended."""


class _Silent:
    callbacks: Sequence[BaseCallbackHandler] = ()

    def ended(self, final: MessageRecord, observer: TurnObserver) -> None:
        return None


_SILENT = _Silent()


class _NoTelemetry:
    @contextmanager
    def turn(self, message: MessageRecord) -> Iterator[TurnScope]:
        yield _SILENT


NO_TELEMETRY: TurnTelemetry = _NoTelemetry()
"""Turns measured and traced by nothing."""
