"""Writing a session document: Parley's rows and the saver's checkpoints, streamed a page at a time.

Consistency: an export starts only between turns (``SessionBusy`` while a message is queued or running)
and reads the session's rows a page at a time, bounded by the newest message the session had when it
began. Before the checksum — the document's last member — it reads the session again: if anything moved
(a message accepted, a turn ended, a checkpoint written, the session deleted) the stream stops there,
without a checksum, and the truncated document is refused by any import. So a document is either a
consistent snapshot of the session or no document at all. A page of rows, or of checkpoints, is read
and then written out before the next is read: no read is left open while a slow client takes the bytes
(the SQLite saver holds its one lock while it lists).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import SerializerProtocol

from parley.core import rules
from parley.core.errors import ServiceUnavailable
from parley.core.timestamps import utc_now
from parley.storage import messages, sessions
from parley.storage.db import Database, Row
from parley.storage.transfer import codec, namespaces
from parley.storage.transfer.document import CHECKSUM_ALGORITHM, FORMAT, VERSION, Checksum, canonical
from parley.storage.transfer.tables import SECTIONS, Section

logger = logging.getLogger(__name__)

PAGE_ROWS = 500
PAGE_CHECKPOINTS = 8
CHUNK_BYTES = 64 * 1024


class ExportInterrupted(ServiceUnavailable):
    """The session changed while it was being exported; the document was cut short (no checksum)."""

    title = "Export Interrupted"
    type_slug = "export-interrupted"


@dataclass(frozen=True, slots=True)
class _Snapshot:
    session: dict[str, Any]
    max_seq: int
    newest_checkpoints: tuple[tuple[str | None, str | None], ...]
    """Each checkpoint namespace of the thread, with its newest checkpoint."""


def _config(session_id: str, namespace: str | None) -> Any:
    conf = {"thread_id": session_id}
    if namespace is not None:
        conf["checkpoint_ns"] = namespace
    return {"configurable": conf}


async def _newest_checkpoints(
    saver: BaseCheckpointSaver[Any], session_id: str
) -> tuple[tuple[str | None, str | None], ...]:
    newest: list[tuple[str | None, str | None]] = []
    for namespace in await namespaces.of_thread(saver, session_id):
        # Read to its end, not left at the first item: an abandoned listing is finalised later, perhaps
        # after its connection has closed.
        first = [s async for s in saver.alist(_config(session_id, namespace), limit=1)]
        newest.append((namespace, str(first[0].config["configurable"]["checkpoint_id"]) if first else None))
    return tuple(newest)


async def _snapshot(
    db: Database, saver: BaseCheckpointSaver[Any], *, session_id: str, user_id: str, operator: bool
) -> _Snapshot:
    async with db.read() as tx:
        row = await sessions.visible(tx, session_id=session_id, user_id=user_id, operator=operator)
        pending = await messages.first_pending_id(tx, session_id=session_id)
        rules.check_not_busy(session_id=session_id, pending_message_id=pending)
        top = await tx.one("SELECT max(seq) AS top FROM parley_messages WHERE session_id = ?", (session_id,))
    max_seq = 0 if top is None or top["top"] is None else int(top["top"])
    session = dict(row)
    return _Snapshot(session, max_seq, await _newest_checkpoints(saver, session_id))


_IN_SNAPSHOT = "message_id IN (SELECT message_id FROM parley_messages WHERE session_id = ? AND seq <= ?)"
_PAGES: dict[str, tuple[str, bool]] = {
    # member: (the snapshot's rows after the page's key; whether (session, max seq) is asked twice)
    "messages": ("session_id = ? AND seq <= ? AND seq > ?", False),
    "transcript": ("session_id = ? AND position <= 2 * ? + 1 AND position > ?", False),
    "interrupts": (f"session_id = ? AND {_IN_SNAPSHOT} AND interrupt_id > ?", True),
    "actions": ("session_id = ? AND action_key > ?", False),
    "message_events": (f"{_IN_SNAPSHOT} AND (message_id, first_seq) > (?, ?)", False),
}


def _page(section: Section, *, session_id: str, max_seq: int) -> tuple[str, tuple[Any, ...]]:
    """The statement reading the page after a key, and its parameters before the key."""
    where, twice = _PAGES[section.member]
    head: tuple[Any, ...] = (session_id, max_seq)
    if twice:
        head = (session_id, *head)
    elif section.member == "actions":
        head = (session_id,)  # an action row names no message: every one of the session's
    return f"SELECT * FROM {section.table} WHERE {where} ORDER BY {section.order} LIMIT ?", head


def _start_key(section: Section) -> tuple[Any, ...]:
    if section.member in ("messages", "transcript"):
        return (-1,)
    if section.member == "message_events":
        return ("", -1)
    return ("",)


def _item(section: Section, row: Row) -> dict[str, Any]:
    item = {k: v for k, v in dict(row).items() if k not in section.assigned}
    if section.member == "transcript":
        item["line"] = int(row["position"]) % 2  # position = 2·seq + line
    return item


async def _rows(
    db: Database, section: Section, *, session_id: str, max_seq: int
) -> AsyncIterator[dict[str, Any]]:
    sql, head = _page(section, session_id=session_id, max_seq=max_seq)
    keys = [k.strip() for k in section.order.split(",")]
    after = _start_key(section)
    while True:
        async with db.read() as tx:
            page = await tx.all(sql, (*head, *after, PAGE_ROWS))
        for row in page:
            yield _item(section, row)
        if len(page) < PAGE_ROWS:
            return
        after = tuple(page[-1][k] for k in keys)


class _Writer:
    """The document's bytes, in chunks, with the checksum fed as they are made."""

    def __init__(self) -> None:
        self.checksum = Checksum()
        self._buffer = bytearray(b"{")
        self._first = True
        self._items = 0

    def _key(self, key: str) -> None:
        if not self._first:
            self._buffer += b","
        self._first = False
        self._buffer += canonical(key) + b":"

    def member(self, key: str, value: Any, *, hashed: bool = True) -> None:
        self._key(key)
        self._buffer += canonical(value)
        if hashed:
            self.checksum.member(key, value)

    def start(self, key: str) -> None:
        self._key(key)
        self._buffer += b"["
        self._items = 0
        self.checksum.start(key)

    def item(self, value: Any) -> None:
        if self._items:
            self._buffer += b","
        self._items += 1
        self._buffer += canonical(value)
        self.checksum.item(value)

    def end(self) -> None:
        self._buffer += b"]"
        self.checksum.end()

    def close(self, checksum: dict[str, str]) -> None:
        self.member("checksum", checksum, hashed=False)
        self._buffer += b"}\n"

    def take(self, *, at_least: int = CHUNK_BYTES) -> bytes | None:
        if len(self._buffer) < at_least:
            return None
        chunk = bytes(self._buffer)
        self._buffer.clear()
        return chunk


async def open_export(
    *,
    db: Database,
    saver: BaseCheckpointSaver[Any],
    default_graph: str,
    session_id: str,
    user_id: str,
    operator: bool,
) -> AsyncIterator[bytes]:
    """The session's document as a stream of bytes. ``NotFound`` (not the caller's) and ``SessionBusy``
    (a turn queued or running) are raised here, before the first byte."""
    snapshot = await _snapshot(db, saver, session_id=session_id, user_id=user_id, operator=operator)
    graph = snapshot.session.get("graph") or default_graph
    return _generate(db, saver, graph=graph, session_id=session_id, snapshot=snapshot)


async def _generate(
    db: Database, saver: BaseCheckpointSaver[Any], *, graph: str, session_id: str, snapshot: _Snapshot
) -> AsyncIterator[bytes]:
    serde: SerializerProtocol = saver.serde
    out = _Writer()
    out.member("format", FORMAT)
    out.member("version", VERSION)
    out.member("graph", graph)
    out.member("exported_at", utc_now())
    out.member("session", snapshot.session)
    for section in SECTIONS:
        out.start(section.member)
        async for item in _rows(db, section, session_id=session_id, max_seq=snapshot.max_seq):
            out.item(item)
            if (chunk := out.take()) is not None:
                yield chunk
        out.end()
    out.start("checkpoints")
    for namespace, _ in snapshot.newest_checkpoints:
        before: Any = None
        while True:
            config = _config(session_id, namespace)
            page = [s async for s in saver.alist(config, before=before, limit=PAGE_CHECKPOINTS)]
            for saved in page:
                out.item(codec.encode(serde, saved))
                if (chunk := out.take()) is not None:
                    yield chunk
            if len(page) < PAGE_CHECKPOINTS:
                break
            before = {"configurable": {"checkpoint_id": page[-1].config["configurable"]["checkpoint_id"]}}
    out.end()
    try:
        again = await _snapshot(db, saver, session_id=session_id, user_id="", operator=True)
    except Exception as exc:  # NotFound, SessionBusy, storage: any of them means no consistent snapshot
        again = None
        logger.warning("export of session %s cut short: %s", session_id, type(exc).__name__)
    if again != snapshot:
        if (chunk := out.take(at_least=0)) is not None:
            yield chunk
        raise ExportInterrupted(f"Session {session_id} changed during its export; export it again.")
    out.close({"algorithm": CHECKSUM_ALGORITHM, "value": out.checksum.hexdigest()})
    chunk = out.take(at_least=0)
    assert chunk is not None
    yield chunk
