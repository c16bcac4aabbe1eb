"""The checkpoint namespaces of a thread (the root graph's ``""``, a subgraph's ``node:task``), read from
the saver's own table.

The savers' ``alist`` has no way to name them, and listing a thread without a namespace cannot use the
savers' primary key (thread, namespace, checkpoint) to order by checkpoint: every page then sorts the whole
thread, blobs and all — quadratic in the session's length. Listed one namespace at a time, each page is a
range of that key. This is the one place that reads a saver's table directly (its key columns only, which
both savers define alike); for another saver every namespace is listed at once, correctly but slowly.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

_SQL = "SELECT DISTINCT checkpoint_ns FROM checkpoints WHERE thread_id = {} ORDER BY checkpoint_ns"


async def of_thread(saver: BaseCheckpointSaver[Any], thread_id: str) -> list[str | None]:
    """The thread's namespaces, in order; ``[None]`` (all at once) for a saver this does not know."""
    if isinstance(saver, AsyncSqliteSaver):
        await saver.setup()
        async with saver.lock, saver.conn.execute(_SQL.format("?"), (thread_id,)) as cursor:
            return [str(row[0]) for row in await cursor.fetchall()]
    if isinstance(saver, AsyncPostgresSaver):
        async with saver._cursor() as cursor:  # the saver's own connection handling, pool or not
            await cursor.execute(_SQL.format("%s"), (thread_id,))
            return [str(row["checkpoint_ns"]) for row in await cursor.fetchall()]
    return [None]
