"""Checkpoint retention: delete a session's checkpoints beyond its latest N, in the saver's own tables.

The installed savers offer no "keep the latest N" (PostgreSQL's ``aprune`` keeps only the latest one,
SQLite's has no prune at all), so this module deletes through SQL. **It depends on the savers' schemas**
— ``TABLES`` below: SQLite's ``checkpoints`` and ``writes``; PostgreSQL's ``checkpoints``,
``checkpoint_writes`` and ``checkpoint_blobs`` — and checks them when it starts
(``ConfigurationError`` if a saver upgrade changed them); ``tests/integration/test_checkpoint_retention.py``
fails when they change.

What is deleted, and why it is safe:

- Only the root namespace (``checkpoint_ns = ''``); a subgraph's own checkpoints are left alone.
- Checkpoint ids sort in the order they were written (both savers list by them), so "beyond the latest
  N" is every checkpoint up to the (N+1)-th newest id — a cut read *before* the session is found idle:
  a turn or rewind that starts afterwards writes newer ids and continues from the head, which is kept,
  and so is its rollback's target (the head it started from). The head's pending writes (a pause's
  interrupts) go with the head, kept.
- Nothing of a session with a message queued or running. On PostgreSQL the check, the cut and the
  deletes are one transaction holding the session's row lock, which every message's acceptance takes
  (``storage/sessions.py``): no message is accepted meanwhile. SQLite's checkpoints are in another file
  (no shared transaction), but there a checkpoint row holds its whole state, so deleting older rows
  cannot damage a newer one.
- PostgreSQL's blobs are shared between checkpoints (a channel's value is stored once per version):
  only versions the deleted checkpoints referenced and no remaining checkpoint does are deleted.
"""

from __future__ import annotations

from typing import Any

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from psycopg_pool import AsyncConnectionPool

from parley.core.errors import ConfigurationError
from parley.storage.sql_store import SqlStore

TABLES: dict[str, dict[str, frozenset[str]]] = {
    "sqlite": {
        "checkpoints": frozenset({"thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id"}),
        "writes": frozenset({"thread_id", "checkpoint_ns", "checkpoint_id"}),
    },
    "postgres": {
        "checkpoints": frozenset({"thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint"}),
        "checkpoint_writes": frozenset({"thread_id", "checkpoint_ns", "checkpoint_id"}),
        "checkpoint_blobs": frozenset({"thread_id", "checkpoint_ns", "channel", "version"}),
    },
}
"""The saver tables that hold a session's rows, and the columns pruning reads (``thread_id`` is the
session id)."""

_CUT = (
    "SELECT checkpoint_id FROM checkpoints WHERE thread_id = {p} AND checkpoint_ns = '' "
    "ORDER BY checkpoint_id DESC LIMIT 1 OFFSET {p}"
)


def _check(dialect: str, found: dict[str, set[str]]) -> None:
    for table, columns in TABLES[dialect].items():
        missing = columns - found.get(table, set())
        if missing:
            raise ConfigurationError(
                f"checkpoint retention: the saver's table {table} lacks {', '.join(sorted(missing))}; "
                "this version of langgraph-checkpoint is not the one pruning was written for "
                "(set PARLEY_CHECKPOINT_KEEP=0 to run without pruning)"
            )


class SqliteCheckpointPruner:
    """Prunes ``AsyncSqliteSaver``'s tables, on the saver's own connection and lock."""

    def __init__(self, saver: BaseCheckpointSaver[Any], store: SqlStore) -> None:
        self._conn: aiosqlite.Connection = saver.conn  # type: ignore[attr-defined]
        self._lock: Any = saver.lock  # type: ignore[attr-defined]
        self._store = store

    async def check_schema(self) -> None:
        """``ConfigurationError`` unless the saver's tables are the ones this module deletes from."""
        found: dict[str, set[str]] = {}
        async with self._lock:
            for table in TABLES["sqlite"]:
                async with self._conn.execute(f"PRAGMA table_info({table})") as cursor:
                    found[table] = {str(row[1]) for row in await cursor.fetchall()}
        _check("sqlite", found)

    async def prune(self, *, session_id: str, keep: int) -> int:
        """See ``CheckpointPruner.prune``."""
        async with self._lock, self._conn.execute(_CUT.format(p="?"), (session_id, keep)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return 0
        if await self._store.has_pending(session_id=session_id):
            return 0
        deleted = 0
        async with self._lock:
            for table in ("writes", "checkpoints"):
                cursor = await self._conn.execute(
                    f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns = '' AND checkpoint_id <= ?",
                    (session_id, row[0]),
                )
                deleted += max(cursor.rowcount, 0)
                await cursor.close()
            await self._conn.commit()
        return deleted


class PostgresCheckpointPruner:
    """Prunes ``AsyncPostgresSaver``'s tables, in one transaction with the session's row locked."""

    def __init__(self, saver: BaseCheckpointSaver[Any]) -> None:
        self._pool: AsyncConnectionPool[Any] = saver.conn  # type: ignore[attr-defined]

    async def check_schema(self) -> None:
        """``ConfigurationError`` unless the saver's tables are the ones this module deletes from."""
        found: dict[str, set[str]] = {}
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ANY(%s)",
                (list(TABLES["postgres"]),),
            )
            for row in await cursor.fetchall():
                found.setdefault(str(row["table_name"]), set()).add(str(row["column_name"]))
        _check("postgres", found)

    async def prune(self, *, session_id: str, keep: int) -> int:
        """See ``CheckpointPruner.prune``."""
        async with self._pool.connection() as conn, conn.transaction():
            cut = await (await conn.execute(_CUT.format(p="%s"), (session_id, keep))).fetchone()
            if cut is None:
                return 0
            # The lock every message's acceptance takes: none is accepted until this commits.
            locked = await conn.execute(
                "SELECT 1 FROM parley_sessions WHERE session_id = %s FOR UPDATE", (session_id,)
            )
            if await locked.fetchone() is None:
                return 0  # deleted meanwhile: its deletion removes the rest
            pending = await conn.execute(
                "SELECT 1 FROM parley_messages WHERE session_id = %s AND status IN ('queued', 'running') "
                "LIMIT 1",
                (session_id,),
            )
            if await pending.fetchone() is not None:
                return 0
            through = cut["checkpoint_id"]
            writes = await conn.execute(
                "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_ns = '' "
                "AND checkpoint_id <= %s",
                (session_id, through),
            )
            gone = await conn.execute(
                "DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = '' AND checkpoint_id <= %s "
                "RETURNING checkpoint -> 'channel_versions' AS versions",
                (session_id, through),
            )
            freed = {(c, str(v)) for row in await gone.fetchall() for c, v in (row["versions"] or {}).items()}
            deleted = max(writes.rowcount, 0) + max(gone.rowcount, 0)
            if freed:
                kept = await conn.execute(
                    "SELECT DISTINCT v.key AS channel, v.value AS version FROM checkpoints c, "
                    "jsonb_each_text(c.checkpoint -> 'channel_versions') v "
                    "WHERE c.thread_id = %s AND c.checkpoint_ns = ''",
                    (session_id,),
                )
                unused = freed - {(r["channel"], r["version"]) for r in await kept.fetchall()}
                by_channel: dict[str, list[str]] = {}
                for channel, version in unused:
                    by_channel.setdefault(channel, []).append(version)
                for channel, versions in by_channel.items():
                    blobs = await conn.execute(
                        "DELETE FROM checkpoint_blobs WHERE thread_id = %s AND checkpoint_ns = '' "
                        "AND channel = %s AND version = ANY(%s)",
                        (session_id, channel, versions),
                    )
                    deleted += max(blobs.rowcount, 0)
            return int(deleted)


async def open_pruner(
    saver: BaseCheckpointSaver[Any], store: SqlStore, *, backend: str
) -> SqliteCheckpointPruner | PostgresCheckpointPruner:
    """The pruner for the saver ``backend`` names, its schema checked."""
    pruner: SqliteCheckpointPruner | PostgresCheckpointPruner = (
        PostgresCheckpointPruner(saver) if backend == "postgres" else SqliteCheckpointPruner(saver, store)
    )
    await pruner.check_schema()
    return pruner
