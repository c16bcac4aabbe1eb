"""``parley export SESSION_ID > file`` and ``parley import < file``: the session document, for operators,
working on the data directly (the service may be running or not).

On SQLite the export reads through read-only connections, beside a running service (which holds the data's
lock file): WAL readers see committed transactions only, and the export refuses a session mid-turn and
stops before its checksum if the session moves while it reads, as over HTTP. The import writes, so it
takes the lock like any Parley process: while a service runs on that data it is refused — stop the
service, or POST the document to ``/v1/sessions/import``. On PostgreSQL both run beside any service.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import IO, Any

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from parley.core.errors import ConfigurationError, ParleyError
from parley.settings import Settings
from parley.storage.db import Database
from parley.storage.factory import open_storage
from parley.storage.sqlite_db import SqliteDatabase
from parley.storage.transfer import SqlTransfer


@asynccontextmanager
async def _read_only_sqlite(settings: Settings) -> AsyncIterator[tuple[Database, BaseCheckpointSaver[Any]]]:
    db = SqliteDatabase(settings.sqlite_path, read_only=True)
    await db.open(migrate=False)
    try:
        if await db.schema_version() != await db.latest_version():
            raise ConfigurationError(
                f"{settings.sqlite_path} is not at this version's schema; run parley migrate"
            )
        path = settings.checkpoint_path
        conn = await aiosqlite.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            await conn.execute("PRAGMA busy_timeout=30000")
            saver = AsyncSqliteSaver(conn)
            saver.is_setup = True  # its setup writes (tables, pragmas); the tables are there already
            yield db, saver
        finally:
            await conn.close()
    finally:
        await db.close()


async def _export(settings: Settings, session_id: str, out: IO[bytes]) -> None:
    async with AsyncExitStack() as stack:
        if settings.backend == "sqlite":
            db, saver = await stack.enter_async_context(_read_only_sqlite(settings))
        else:
            storage = await open_storage(settings, stack)
            db, saver = storage.db, storage.checkpointer
        transfer = SqlTransfer(db=db, saver=saver, graphs=settings.graph_references())
        stream = await transfer.open_export(session_id=session_id, user_id="", operator=True)
        async for chunk in stream:
            out.write(chunk)
        out.flush()


async def _import(settings: Settings, source: Path, *, replace: bool) -> str:
    async with AsyncExitStack() as stack:
        storage = await open_storage(settings, stack)
        transfer = SqlTransfer(db=storage.db, saver=storage.checkpointer, graphs=settings.graph_references())
        done = await transfer.import_document(source=source, replace=replace)
        counts = ", ".join(f"{n} {kind}" for kind, n in done.counts.items())
        return f"parley: imported session {done.session_id} of {done.user_id} ({counts or 'empty'})"


def export_command(settings: Settings, session_id: str) -> int:
    """Write the session's document to stdout; 0, or 1 (refused) / 2 (storage unusable) with a line why."""
    try:
        asyncio.run(_export(settings, session_id, sys.stdout.buffer))
    except ConfigurationError as exc:
        print(f"parley: cannot export: {exc}", file=sys.stderr)
        return 2
    except ParleyError as exc:
        print(f"parley: cannot export session {session_id}: {exc}", file=sys.stderr)
        return 1
    return 0


def import_command(settings: Settings, *, replace: bool) -> int:
    """Create the session of the document on stdin; 0, or 1 (refused) / 2 (storage unusable)."""
    with tempfile.NamedTemporaryFile(prefix="parley-import-", suffix=".json") as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.flush()
        try:
            line = asyncio.run(_import(settings, Path(spool.name), replace=replace))
        except ConfigurationError as exc:
            hint = " (stop the service, or POST the document to /v1/sessions/import)"
            print(
                f"parley: cannot import: {exc}{hint if settings.backend == 'sqlite' else ''}", file=sys.stderr
            )
            return 2
        except ParleyError as exc:
            where = getattr(exc, "loc", None)
            at = f" at {'.'.join(str(p) for p in where)}" if where else ""
            print(f"parley: cannot import{at}: {exc}", file=sys.stderr)
            return 1
    print(line, file=sys.stderr)
    return 0
