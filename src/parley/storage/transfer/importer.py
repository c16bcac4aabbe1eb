"""Writing a session document into this instance's storage, all of it or nothing.

1. **Check** the whole document first (``validate.check``, in a worker thread: it deserialises every
   checkpoint): nothing is written for a document with any fault.
2. **Clear the way**: the session id must be free (``Conflict``), or, with ``replace``, the session
   there must be between turns; its rows go in one transaction (from then on a message to it is
   ``404``, so no turn can start on half-written state), then any checkpoints of the thread.
3. **Checkpoints** through the saver's own ``aput``/``aput_writes``, under the session's thread.
4. **Parley's rows** in one transaction: the session, its messages (given new ``seq``\\s, the arrival
   order of this database), transcript lines at ``2·seq + line``, interrupts, actions, events.

The two stores cannot share a transaction, so the session becomes visible only in step 4, once its
checkpoints are in place; if step 3 or 4 fails, the thread's checkpoints are deleted again and nothing
of the session is left. A ``replace`` that fails after step 2 leaves the id free — the old session is
gone — and can be run again. Imports of one id are serialised in this process (``ImportLocks``); two
processes importing the same id at once are not guarded against (the second one's rows collide and it
is refused, but its checkpoint clean-up may remove the first one's checkpoints).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from parley.core import rules
from parley.core.errors import Conflict
from parley.storage import messages, sessions
from parley.storage.db import Database, Duplicate, Tx
from parley.storage.transfer import codec, reader, tables, validate
from parley.storage.transfer.document import DocumentError
from parley.storage.transfer.tables import SECTIONS, Column, Section

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Imported:
    """What an import wrote."""

    session_id: str
    user_id: str
    counts: dict[str, int]


class ImportLocks:
    """One import of a session id at a time in this process."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._locks.get(session_id) is lock:
                del self._locks[session_id]


def _check_file(
    source: Path, schema: dict[str, dict[str, Column]], serde: Any, served: Mapping[str, str]
) -> validate.Summary:
    with source.open("rb") as stream:
        return validate.check(reader.parts(stream), schema=schema, serde=serde, served=served)


async def check_document(
    *, db: Database, saver: BaseCheckpointSaver[Any], served: Mapping[str, str], source: Path
) -> tuple[validate.Summary, dict[str, dict[str, Column]]]:
    """The document's summary and this database's columns; ``DocumentError`` at its first fault."""
    async with db.read() as tx:
        schema = await tables.schema(tx)
    summary = await asyncio.to_thread(_check_file, source, schema, saver.serde, served)
    return summary, schema


async def _clear(db: Database, saver: BaseCheckpointSaver[Any], *, session_id: str, replace: bool) -> None:
    async with db.transaction() as tx:
        row = await tx.one(
            "SELECT session_id FROM parley_sessions WHERE session_id = ?" + tx.dialect.for_update,
            (session_id,),
        )
        if row is not None:
            if not replace:
                raise Conflict(
                    f"Session {session_id} exists on this instance; "
                    "import with ?replace=true to overwrite it."
                )
            pending = await messages.first_pending_id(tx, session_id=session_id)
            rules.check_deletable(session_id=session_id, pending_message_id=pending)
            await sessions.delete(tx, session_id=session_id)
    # No session of that id exists now: checkpoints of its thread, if any, belong to nothing.
    await saver.adelete_thread(session_id)


async def _write_checkpoints(saver: BaseCheckpointSaver[Any], source: Path, *, session_id: str) -> None:
    with source.open("rb") as stream:
        for part in reader.parts(stream):
            if not isinstance(part, reader.Item) or part.key != "checkpoints":
                continue
            item = codec.decode(saver.serde, part.value, [part.key, part.index])
            parent: Any = {
                "configurable": {
                    "thread_id": session_id,
                    "checkpoint_ns": item.checkpoint_ns,
                    "checkpoint_id": item.parent_checkpoint_id,
                }
            }
            # Every channel's version is "new" here: the PostgreSQL saver stores a channel's value (as a
            # blob) only for the versions it is told are new, and this thread has none yet.
            versions = dict(item.checkpoint["channel_versions"])
            await saver.aput(parent, item.checkpoint, item.metadata, versions)  # type: ignore[arg-type]
            at: Any = {
                "configurable": {
                    "thread_id": session_id,
                    "checkpoint_ns": item.checkpoint_ns,
                    "checkpoint_id": item.checkpoint_id,
                }
            }
            for task_id, group in itertools.groupby(item.writes, key=lambda w: w[0]):
                await saver.aput_writes(at, [(channel, value) for _, channel, value in group], task_id)


async def _insert(
    tx: Tx, section: Section, known: dict[str, Column], row: dict[str, Any], extra: dict[str, Any]
) -> Any:
    values = {**{k: v for k, v in row.items() if k != "line" or section.member != "transcript"}, **extra}
    unknown = [k for k in values if k not in known and k not in extra]
    if unknown:  # checked already; the names go into SQL, so never trust that blindly
        raise DocumentError("is not a column this instance has", loc=[section.member, unknown[0]])
    names = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    returning = " RETURNING seq" if section.member == "messages" else ""
    sql = f"INSERT INTO {section.table} ({names}) VALUES ({marks}){returning}"
    if returning:
        return await tx.one(sql, tuple(values.values()))
    await tx.execute(sql, tuple(values.values()))
    return None


async def _write_rows(tx: Tx, source: Path, *, schema: dict[str, dict[str, Column]], session_id: str) -> None:
    by_member = {s.member: s for s in SECTIONS}
    seqs: dict[str, int] = {}
    with source.open("rb") as stream:
        for part in reader.parts(stream):
            if isinstance(part, reader.Member) and part.key == "session":
                await _insert(tx, tables.SESSION, schema["session"], part.value, {})
            elif isinstance(part, reader.Start) and part.key == "checkpoints":
                break
            elif isinstance(part, reader.Item):
                section = by_member[part.key]
                row: dict[str, Any] = part.value
                extra: dict[str, Any] = {}
                if "session_id" in section.assigned:
                    extra["session_id"] = session_id
                if section.member == "transcript":
                    extra["position"] = 2 * seqs[row["message_id"]] + int(row["line"])
                returned = await _insert(tx, section, schema[section.member], row, extra)
                if section.member == "messages":
                    seqs[row["message_id"]] = int(returned["seq"])


async def import_document(
    *,
    db: Database,
    saver: BaseCheckpointSaver[Any],
    served: Mapping[str, str],
    source: Path,
    replace: bool,
    locks: ImportLocks,
) -> Imported:
    """Check the document at ``source`` and write it (the module docstring says how). ``DocumentError``
    for a bad document (nothing written); ``Conflict`` for an id in use; ``SessionBusy`` to replace a
    session mid-turn."""
    summary, schema = await check_document(db=db, saver=saver, served=served, source=source)
    session_id = summary.session_id
    async with locks.hold(session_id):
        await _clear(db, saver, session_id=session_id, replace=replace)
        try:
            await _write_checkpoints(saver, source, session_id=session_id)
            try:
                async with db.transaction() as tx:
                    await _write_rows(tx, source, schema=schema, session_id=session_id)
                    # Bound to the graph the document names, as this instance calls it (a document
                    # from before graphs had names carries no graph in its session row).
                    await tx.execute(
                        "UPDATE parley_sessions SET graph = ? WHERE session_id = ?",
                        (summary.graph, session_id),
                    )
            except Duplicate:
                raise Conflict(
                    "The document's rows collide with rows of another session on this instance "
                    "(a message id, an action key or an idempotency key)."
                ) from None
        except BaseException:
            try:
                await asyncio.shield(saver.adelete_thread(session_id))
            except Exception:
                logger.exception(
                    "import of session %s failed; its checkpoints could not be removed", session_id
                )
            raise
    await _refresh_statistics(db)
    return Imported(session_id, summary.user_id, summary.counts)


async def _refresh_statistics(db: Database) -> None:
    """PostgreSQL: bring the planner's statistics of the saver's tables up to date after a bulk write.

    The saver reads a checkpoint's channel values with a join the planner plans from those statistics;
    taken before a large import (say, 10,000 turns into a young database) they promise a few blobs per
    thread, and it hashes all of the thread's blobs for every checkpoint read: a page of the next export
    took 1.3 s instead of 0.5 ms, and so did every turn's first read, until autovacuum caught up. ANALYZE
    samples a bounded number of rows (about a second at most) and takes no lock that blocks a turn.
    """
    if db.dialect.name != "postgres":
        return
    try:
        async with db.one_statement(writes=True) as tx:
            await tx.execute("ANALYZE checkpoints, checkpoint_blobs, checkpoint_writes")
    except Exception:  # the import is done; stale statistics cost time, not correctness
        logger.warning("could not refresh the checkpoint tables' statistics after an import", exc_info=True)
