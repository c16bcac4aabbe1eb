"""The small database interface Parley's queries are written against, once for every dialect.

Queries use ``?`` placeholders and SQL that SQLite and PostgreSQL both speak (``RETURNING``,
``ON CONFLICT``, ``FILTER``, partial indexes); the few real differences are named in ``Dialect``. A
``Database`` hands out transactions; a ``Tx`` runs statements inside one. Rows are read by column name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

Row = Mapping[str, Any]
Params = Sequence[Any]


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the SQL dialects Parley speaks."""

    name: str
    for_update: str
    """Appended to a SELECT that must lock the rows it reads until the transaction ends. SQLite needs
    nothing: a write transaction (``BEGIN IMMEDIATE``) already excludes every other writer."""
    skip_locked: str = ""
    """Appended to a SELECT that claims rows for this process: it locks them, passing over those another
    transaction holds, so that several processes claiming at once each get rows of their own (PostgreSQL's
    ``FOR UPDATE SKIP LOCKED``). SQLite's writers already take turns."""


SQLITE = Dialect(name="sqlite", for_update="")
POSTGRES = Dialect(name="postgres", for_update=" FOR UPDATE", skip_locked=" FOR UPDATE SKIP LOCKED")


class Duplicate(Exception):
    """A unique constraint refused a row (say, two requests with one idempotency key at once)."""


class Tx(Protocol):
    """Statements inside one transaction."""

    @property
    def dialect(self) -> Dialect:
        """The SQL dialect of the connection."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; the number of rows it changed."""

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""


class Database(Protocol):
    """A connection (SQLite) or a pool of them (PostgreSQL), with Parley's schema applied."""

    @property
    def dialect(self) -> Dialect:
        """The SQL dialect."""

    async def open(self, *, migrate: bool = True) -> None:
        """Connect; with ``migrate``, apply pending migrations first. Raises if storage is unusable."""

    async def close(self) -> None:
        """Release every connection; idempotent."""

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        Driver errors that mean "storage cannot answer now" become ``StorageUnavailable``; a unique
        constraint violation becomes ``Duplicate``.
        """

    def read(self) -> AbstractAsyncContextManager[Tx]:
        """Statements that only read (one consistent snapshot where the dialect gives one)."""

    def one_statement(self, *, writes: bool) -> AbstractAsyncContextManager[Tx]:
        """Exactly one statement (``writes``: one that changes rows). A statement is atomic by itself,
        so where a transaction costs round trips (PostgreSQL: ``BEGIN`` and ``COMMIT``) it runs without
        one; errors become Parley's as in ``transaction``."""

    async def schema_version(self) -> int:
        """The highest migration applied."""

    async def latest_version(self) -> int:
        """The version a fully migrated database of this dialect has."""
