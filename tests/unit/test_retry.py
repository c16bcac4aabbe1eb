from __future__ import annotations

import random
import sqlite3

import pytest

from parley.core.retry import backoff_seconds, is_transient
from parley.models.scripted import ScriptedHTTPError, ScriptedModelError


class RateLimitError(Exception):
    """Named like openai's and anthropic's."""


class _Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class ApiError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.response = _Response(status_code)


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError(),
        ConnectionResetError(),
        sqlite3.OperationalError("database is locked"),
        ScriptedHTTPError(429),
        ScriptedHTTPError(503),
        ApiError(500),
        ApiError(408),
        RateLimitError(),
    ],
)
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [ValueError(), KeyError("x"), ScriptedModelError(), ScriptedHTTPError(400), ApiError(401), ApiError(404)],
)
def test_permanent(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempt in range(1, 10):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        values = [backoff_seconds(attempt, base=0.5, cap=30.0, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= v <= ceiling for v in values)
        assert len(set(values)) > 1  # jittered
