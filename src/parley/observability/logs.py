"""Logs: one JSON object per line (or the classic text line), carrying the ids of what is being done.

The ids live in context variables: the request middleware (``api/request_context.py``) sets
``request_id`` for everything a request does; the runner sets ``session_id`` and ``message_id`` around
each turn (``runners/turn_tasks.py``), in the turn's own task, so they hold across its awaits and never
leak into another turn. The formatter reads them per record: nothing to pass to each log call.

What never goes in a log line at INFO or above: message text, replies, resume values, API keys or
headers. Log calls name messages and sessions by id, and errors by class (``first_line`` of a driver's
error at most); the access log shows the method, the path (ids only) and the status.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

request_id: ContextVar[str | None] = ContextVar("parley_request_id", default=None)
session_id: ContextVar[str | None] = ContextVar("parley_session_id", default=None)
message_id: ContextVar[str | None] = ContextVar("parley_message_id", default=None)

_CONTEXT = (("request_id", request_id), ("session_id", session_id), ("message_id", message_id))

LogFormat = Literal["json", "text", "auto"]


@contextmanager
def turn_context(*, session: str, message: str) -> Iterator[None]:
    """Log lines inside carry the turn's session and message ids."""
    session_token = session_id.set(session)
    message_token = message_id.set(message)
    try:
        yield
    finally:
        message_id.reset(message_token)
        session_id.reset(session_token)


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time (UTC, ISO 8601), level, logger, message, the context ids that are
    set, and the exception's traceback as one string field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, variable in _CONTEXT:
            value = variable.get()
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    """The classic line, with the request or turn ids at its end when set."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{name}={value}" for name, variable in _CONTEXT if (value := variable.get()))
        if not ids:
            return line
        head, newline, rest = line.partition("\n")
        return f"{head} [{ids}]{newline}{rest}"


def resolve_format(log_format: LogFormat, *, stream: Any = None) -> Literal["json", "text"]:
    """``auto`` is text on a terminal (a developer reading), JSON otherwise (a collector reading)."""
    if log_format != "auto":
        return log_format
    target = sys.stderr if stream is None else stream
    isatty = getattr(target, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure_logging(level: str, log_format: LogFormat) -> None:
    """One handler on the root logger, on stderr, for Parley's records and every library's (uvicorn's
    access and error logs propagate to it: the server is started with ``log_config=None``)."""
    handler = logging.StreamHandler(sys.stderr)
    if resolve_format(log_format) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if level != "debug":
        # The queue logs every job's start and end at INFO: the message rows already say as much.
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
