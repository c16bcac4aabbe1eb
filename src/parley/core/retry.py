"""Which failures are worth another try, and how long to wait before it."""

from __future__ import annotations

import random
import sqlite3

from parley.core.errors import StorageUnavailable

# Exception class names of provider SDKs (openai, anthropic, httpx, groq, mistral …) that mean "try again",
# matched by name so that Parley needs none of those packages installed to recognise them.
_TRANSIENT_NAMES = frozenset(
    {
        "APIConnectionError",
        "APITimeoutError",
        "RateLimitError",
        "InternalServerError",
        "ServiceUnavailableError",
        "OverloadedError",
        "TransportError",
        "TimeoutException",
        "RemoteProtocolError",
        "ReadTimeout",
        "ConnectTimeout",
        # Database drivers (psycopg and its pool; PostgreSQL restarting, a dropped connection): the turn's
        # checkpoint writes go through LangGraph's saver, which lets the driver's own errors through.
        "OperationalError",
        "InterfaceError",
        "PoolTimeout",
    }
)
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})


def _status_of(exc: BaseException) -> int | None:
    for holder in (exc, getattr(exc, "response", None)):
        status = getattr(holder, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def is_transient(exc: BaseException) -> bool:
    """True for timeouts, rate limits, 5xx answers, dropped connections, a locked or unreachable database."""
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if isinstance(exc, sqlite3.OperationalError | StorageUnavailable):
        return True
    status = _status_of(exc)
    if status is not None and (status in _TRANSIENT_STATUS or 500 <= status < 600):
        return True
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


def backoff_seconds(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter before try ``attempt + 1``: half fixed, half random, so that
    many sessions failing together do not retry in lockstep, yet none retries at once."""
    ceiling = min(cap, base * 2.0 ** max(attempt - 1, 0))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
