"""PostgreSQL behind the ``Database`` interface: a psycopg 3 connection pool.

Each transaction takes a pooled connection for its duration only, so sessions run in parallel across
connections and processes. Where SQLite's single writer made check-then-write sequences safe by itself,
here the queries lock what they check (``Dialect.for_update`` on the session row), which serialises the
writers of one session and nobody else.
"""

from __future__ import annotations

import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from parley.core.errors import StorageUnavailable
from parley.storage.db import POSTGRES, Dialect, Duplicate, Params, Row
from parley.storage.migrations.runner import apply_postgres_migrations, latest_version


@lru_cache(maxsize=512)
def _pg(sql: str) -> bytes:
    """A query written with ``?`` placeholders in psycopg's ``%s`` style (no query has a literal ``?``
    or ``%``), as bytes: psycopg's typing wants literal strings, and these are built from literals."""
    return sql.replace("?", "%s").encode()


class _PostgresTx:
    """Statements on one pooled connection inside one transaction — or, with ``single``, one statement
    in autocommit mode, and no second one."""

    __slots__ = ("_conn", "_ran", "_single")

    def __init__(self, conn: psycopg.AsyncConnection[dict[str, Any]], *, single: bool = False) -> None:
        self._conn = conn
        self._single = single
        self._ran = False

    @property
    def dialect(self) -> Dialect:
        return POSTGRES

    async def _run(self, sql: str, params: Params) -> psycopg.AsyncCursor[dict[str, Any]]:
        if self._single:
            if self._ran:
                # Outside a transaction the first statement has committed already: a second one would
                # not be atomic with it.
                raise RuntimeError("one_statement() ran a second statement; use transaction()")
            self._ran = True
        return await self._conn.execute(_pg(sql), params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._run(sql, params)
        return cursor.rowcount

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        cursor = await self._run(sql, params)
        return await cursor.fetchone()

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = await self._run(sql, params)
        return list(await cursor.fetchall())


async def check_if_dropped(conn: psycopg.AsyncConnection[Any]) -> None:
    """The check a pool runs before handing out a connection: a round trip only when the server may
    have dropped it.

    An idle connection has nothing to read. A server that ends one (a restart, an administrator's
    ``pg_terminate_backend``) says so and closes it, which makes its socket readable: then the usual
    empty query finds out, and the pool replaces the connection. Asking every time cost a round trip
    per transaction and per checkpoint call (bench/README.md). A connection lost without a word (a host
    gone) is found by neither: TCP keepalives are for that.
    """
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


_UNAVAILABLE = (psycopg.OperationalError, PoolTimeout, pg_errors.AdminShutdown)


class PostgresDatabase:
    """Parley's tables in PostgreSQL (see the module docstring)."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0) -> None:
        self._url = url
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[dict[str, Any]]] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},
            # A connection the server dropped (a restart) is found out before it is handed out.
            check=check_if_dropped,
            name="parley",
        )

    @property
    def dialect(self) -> Dialect:
        return POSTGRES

    @property
    def url(self) -> str:
        """The connection string."""
        return self._url

    @property
    def pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[dict[str, Any]]]:
        """The connection pool (shared with whoever else needs this database in the process)."""
        return self._pool

    async def open(self, *, migrate: bool = True) -> None:
        """Open the pool (waiting for one connection, so an unreachable server fails here) and apply
        pending migrations."""
        await self._pool.open(wait=True, timeout=10.0)
        if migrate:
            async with self._pool.connection() as conn:
                await apply_postgres_migrations(conn)

    async def close(self) -> None:
        """Close the pool; safe to call twice."""
        await self._pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresTx]:
        """A transaction on a pooled connection; driver errors become Parley's."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield _PostgresTx(conn)
        except pg_errors.UniqueViolation as exc:
            raise Duplicate(str(exc)) from exc
        except _UNAVAILABLE as exc:
            raise StorageUnavailable("Storage is temporarily unavailable; retry.") from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[_PostgresTx]:
        """Reads in one transaction (``READ COMMITTED``, PostgreSQL's default: each statement sees what was
        committed when it started, not one snapshot for the whole block)."""
        async with self.transaction() as tx:
            yield tx

    @asynccontextmanager
    async def one_statement(self, *, writes: bool) -> AsyncIterator[_PostgresTx]:
        """One statement (a read or a write alike) on a pooled connection in autocommit mode: atomic by
        itself, in one round trip where a transaction takes three."""
        try:
            async with self._pool.connection() as conn:
                yield _PostgresTx(conn, single=True)
        except pg_errors.UniqueViolation as exc:
            raise Duplicate(str(exc)) from exc
        except _UNAVAILABLE as exc:
            raise StorageUnavailable("Storage is temporarily unavailable; retry.") from exc

    async def schema_version(self) -> int:
        """The highest migration applied (0 before any)."""
        async with self.read() as tx:
            exists = await tx.one("SELECT to_regclass('parley_schema_migrations') AS t")
            if exists is None or exists["t"] is None:
                return 0
            row = await tx.one("SELECT max(version) AS version FROM parley_schema_migrations")
        return int((row or {}).get("version") or 0)

    async def latest_version(self) -> int:
        """The version a fully migrated PostgreSQL database has."""
        return latest_version("postgres")
