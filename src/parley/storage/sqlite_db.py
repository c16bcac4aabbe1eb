"""SQLite behind the ``Database`` interface: one connection, statements inline on the event loop.

Inline, not in a worker thread, deliberately and measured: a statement on a local WAL file takes tens of
microseconds, while a hop to a worker thread under load waits for the GIL (up to the 5 ms switch
interval) — with a thread per call Parley reached 0.73 of the bare endpoint's throughput; inline it keeps
up (bench/README.md). It is safe because this connection is the only writer of its file: checkpoints
live in a separate file with their own connection, and a lock file keeps a second process off the same
data. The ``Tx`` methods never suspend, so a transaction runs start to end with no other task between
its statements: check-then-write sequences (busy policy, interrupt claims) cannot interleave.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import IO

from parley.core.errors import ConfigurationError, StorageUnavailable
from parley.storage.db import SQLITE, Dialect, Duplicate, Params, Row
from parley.storage.migrations.runner import apply_sqlite_migrations, latest_version


def configure_connection(conn: sqlite3.Connection, *, busy_timeout_ms: int = 30_000) -> None:
    """Pragmas every Parley connection to a SQLite file uses.

    WAL lets readers run beside the one writer; the busy timeout makes a writer wait for another's short
    transactions instead of failing; ``synchronous=NORMAL`` is durable across process crashes in WAL
    mode (only power loss can drop the last transactions), which is the crash model Parley promises.
    """
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")


class DataInUse(ConfigurationError):
    """Another Parley process holds the data directory's lock file."""


def _exclusive_lock(path: Path) -> IO[bytes]:
    """Hold ``path`` locked for this process's lifetime, or refuse: two processes recovering the same
    messages would run their turns twice. The OS drops the lock when the process dies, even by SIGKILL.
    """
    handle = path.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataInUse(
            f"another Parley process is using {path.parent} (lock file {path.name}); "
            "embedded mode serves one data directory from one process"
        ) from None
    return handle


class _SqliteTx:
    """Statements on the store's connection; none of them suspends."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> Dialect:
        return SQLITE

    async def execute(self, sql: str, params: Params = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
        return row  # type: ignore[return-value] # sqlite3.Row reads by column name like a mapping

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        rows: list[Row] = self._conn.execute(sql, params).fetchall()
        return rows


class SqliteDatabase:
    """Parley's tables in one SQLite file (see the module docstring)."""

    def __init__(
        self, path: Path, *, busy_timeout_ms: int = 2_000, read_only: bool = False, shared: bool = False
    ) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._read_only = read_only
        self._shared = shared
        self._conn: sqlite3.Connection | None = None
        self._lock_file: IO[bytes] | None = None

    @property
    def dialect(self) -> Dialect:
        return SQLITE

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    async def open(self, *, migrate: bool = True) -> None:
        """Take the data's lock file, open the database, set pragmas and apply migrations.

        Read-only (``parley export``): no lock file and no migration — a WAL reader beside the serving
        process's writer sees committed transactions only, and writes nothing for it to lose.

        Shared (``parley keys``, beside a running service): no lock file and no migration either. The lock
        keeps a second process from recovering — and running again — the same turns; managing keys runs
        no turn, and its one short write transaction (``BEGIN IMMEDIATE``) waits behind the service's
        like any WAL writer. The schema must be current already (the service migrated it).
        """
        if self._read_only or self._shared:
            # Beside a serving process: the database must be there, and it is neither locked nor migrated.
            if not self._path.exists():
                raise ConfigurationError(f"there is no Parley database at {self._path}")
            if self._read_only:
                conn = sqlite3.connect(
                    f"{self._path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
                )
            else:
                conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            self._conn = conn
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = _exclusive_lock(self._path.with_name(self._path.name + ".lock"))
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            configure_connection(conn, busy_timeout_ms=self._busy_timeout_ms)
            if migrate:
                apply_sqlite_migrations(conn)
        except BaseException:
            self._release_lock()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Close the connection and release the lock file; safe to call twice."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._release_lock()

    def _release_lock(self) -> None:
        lock_file, self._lock_file = self._lock_file, None
        if lock_file is not None:
            lock_file.close()  # closing the descriptor releases the flock

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageUnavailable("Storage is not open.")
        return self._conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteTx]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``: the write lock is taken up front, so the transaction
        cannot fail half-way on a lock another connection holds."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StorageUnavailable("Storage is temporarily unavailable; retry.") from exc
        try:
            yield _SqliteTx(conn)
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
                raise Duplicate(str(exc)) from exc
            if isinstance(exc, sqlite3.OperationalError):
                raise StorageUnavailable("Storage is temporarily unavailable; retry.") from exc
            raise
        conn.execute("COMMIT")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[_SqliteTx]:
        """Reads in autocommit mode: with no ``await`` between them, nothing writes in between."""
        conn = self._connection()
        try:
            yield _SqliteTx(conn)
        except sqlite3.OperationalError as exc:
            raise StorageUnavailable("Storage is temporarily unavailable; retry.") from exc

    def one_statement(self, *, writes: bool) -> AbstractAsyncContextManager[_SqliteTx]:
        """One statement: as ``transaction()`` if it writes, else as ``read()`` — inline on a local file a
        transaction costs microseconds, so there is nothing to save here."""
        return self.transaction() if writes else self.read()

    async def schema_version(self) -> int:
        """The highest migration applied."""
        async with self.read() as tx:
            row = await tx.one("SELECT max(version) AS version FROM parley_schema_migrations")
        return int(row["version"] or 0) if row is not None else 0

    async def latest_version(self) -> int:
        """The version a fully migrated SQLite database has."""
        return latest_version("sqlite")
