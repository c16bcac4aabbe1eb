"""Parley's tables in SQLite.

Statements run on the event loop's thread, not in a worker thread. That is deliberate and measured: a
statement on a local WAL file takes tens of microseconds, while a hop to a worker thread under load
waits for the GIL (up to the 5 ms switch interval) — with a thread per call, Parley reached 0.73 of the
bare endpoint's throughput; inline it keeps up (bench/README.md). It is safe because this connection is
the only writer of its file: checkpoints live in a separate file with their own connection (sharing one
file, a blocked statement here would wait on a lock that only the event loop can release), and a lock
file keeps a second process off the same data. Each call is one whole transaction with no ``await``
inside, so check-then-insert sequences (busy policy, ordering) cannot interleave.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from parley.core.errors import (
    ConfigurationError,
    InvalidInput,
    NotFound,
    SessionBusy,
    SessionInterrupted,
    StorageUnavailable,
)
from parley.core.statuses import (
    CANCELLED_ERROR,
    PENDING_STATUSES,
    InterruptKind,
    MessageKind,
    MessageStatus,
)
from parley.core.timestamps import format_timestamp, utc_now
from parley.storage import demo_shop
from parley.storage import sqlite_interrupts as interrupts
from parley.storage.migrations.runner import apply_sqlite_migrations, latest_version
from parley.storage.records import (
    MessageRecord,
    PendingHead,
    PendingInterrupt,
    SessionRecord,
    TranscriptEntry,
    TranscriptPage,
)

T = TypeVar("T")

# Statuses are enum values, never user input: safe to inline in SQL.
_PENDING_SQL = "(" + ", ".join(f"'{s.value}'" for s in sorted(PENDING_STATUSES)) + ")"
_MESSAGE_COLUMNS = (
    "message_id, session_id, user_id, seq, kind, content, resume, status, reply, interrupt, error, "
    "attempts, created_at, updated_at, started_at, finished_at, actor, usage"
)


def configure_connection(conn: sqlite3.Connection, *, busy_timeout_ms: int = 30_000) -> None:
    """Pragmas every Parley connection to the SQLite file uses.

    WAL lets readers run beside the one writer (the checkpointer has its own connection to the same
    file); the busy timeout makes a writer wait for the other's short transactions instead of failing;
    ``synchronous=NORMAL`` is durable across process crashes in WAL mode (only power loss can drop the
    last transactions), which is the crash model Parley promises.
    """
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")


def _exclusive_lock(path: Path) -> IO[bytes]:
    """Hold ``path`` locked for this process's lifetime, or refuse: two processes recovering the same
    messages would run their turns twice. The OS drops the lock when the process dies, even by SIGKILL.
    """
    handle = path.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigurationError(
            f"another Parley process is using {path.parent} (lock file {path.name}); "
            "embedded mode serves one data directory from one process"
        ) from None
    return handle


def _session_row(
    conn: sqlite3.Connection, *, session_id: str, user_id: str, operator: bool = False
) -> sqlite3.Row:
    """The session's row if the caller may see it — its owner, or an operator; else ``NotFound``.

    Every user-reachable query starts here, so the ownership rule lives in one place.
    """
    row: sqlite3.Row | None = conn.execute(
        "SELECT session_id, user_id, created_at, updated_at FROM parley_sessions WHERE session_id = ?"
        + ("" if operator else " AND user_id = ?"),
        (session_id,) if operator else (session_id, user_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"Session {session_id} not found.")
    return row


def _replay(conn: sqlite3.Connection, *, user_id: str, key: str, request_hash: str) -> MessageRecord | None:
    """The message an earlier request with this idempotency key created; ``InvalidInput`` if that request
    was a different one."""
    earlier = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS}, request_hash FROM parley_messages "
        "WHERE user_id = ? AND idempotency_key = ?",
        (user_id, key),
    ).fetchone()
    if earlier is None:
        return None
    if earlier["request_hash"] != request_hash:
        raise InvalidInput("was used before with a different request", loc=["header", "Idempotency-Key"])
    return _message(earlier)


def _request_hash(*parts: str | None) -> str:
    """What an idempotent repeat must match: the same session, content and kind."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _now() -> str:
    return utc_now()


def _ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _message(row: sqlite3.Row) -> MessageRecord:
    created = _ts(row["created_at"])
    updated = _ts(row["updated_at"])
    assert created is not None
    assert updated is not None
    return MessageRecord(
        message_id=row["message_id"],
        session_id=row["session_id"],
        user_id=row["user_id"],
        seq=row["seq"],
        kind=MessageKind(row["kind"]),
        content=row["content"],
        resume=_loads(row["resume"]),
        status=MessageStatus(row["status"]),
        reply=row["reply"],
        interrupt=_loads(row["interrupt"]),
        error=_loads(row["error"]),
        attempts=row["attempts"],
        created_at=created,
        updated_at=updated,
        started_at=_ts(row["started_at"]),
        finished_at=_ts(row["finished_at"]),
        actor=row["actor"],
        usage=_loads(row["usage"]),
    )


class SqliteStore:
    """The SQLite implementation of ``parley.storage.store.Store``."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 2_000) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._lock_file: IO[bytes] | None = None

    # -- plumbing -------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise StorageUnavailable("Storage is not open.")
        try:
            return fn(self._conn)
        except sqlite3.OperationalError as exc:
            # Locked or unreadable database: the transaction was rolled back, nothing changed.
            raise StorageUnavailable("Storage is temporarily unavailable; retry.") from exc

    @staticmethod
    def _write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def open(self) -> None:
        """Take the data's lock file, open the database, set pragmas and apply migrations."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = _exclusive_lock(self._path.with_name(self._path.name + ".lock"))
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            configure_connection(conn, busy_timeout_ms=self._busy_timeout_ms)
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

    async def check_ready(self) -> None:
        """Raise ``StorageUnavailable`` unless the database answers with the latest schema."""

        def _version(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT max(version) FROM parley_schema_migrations").fetchone()
            return int(row[0] or 0)

        version = await self._run(_version)
        if version != latest_version("sqlite"):
            raise StorageUnavailable(f"Schema version {version}, expected {latest_version('sqlite')}.")

    # -- messages -------------------------------------------------------------------------------

    async def accept_message(
        self,
        *,
        user_id: str,
        session_id: str | None,
        content: str | None,
        kind: MessageKind,
        reject_if_busy: bool,
        resume: Any = None,
        idempotency_key: str | None = None,
        answer_interrupts: bool = False,
    ) -> MessageRecord:
        """See ``Store.accept_message``."""
        resume_json = None if resume is None else json.dumps(resume)
        request_hash = _request_hash(session_id, content, kind, resume_json)

        def _tx(conn: sqlite3.Connection) -> MessageRecord:
            now = _now()
            if idempotency_key is not None:
                earlier = _replay(conn, user_id=user_id, key=idempotency_key, request_hash=request_hash)
                if earlier is not None:
                    return earlier
            sid = session_id
            if sid is None:
                sid = str(uuid.uuid4())
                conn.execute(
                    "INSERT INTO parley_sessions (session_id, user_id, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?)",
                    (sid, user_id, now, now),
                )
            else:
                _session_row(conn, session_id=sid, user_id=user_id)
                if reject_if_busy:
                    busy = conn.execute(
                        "SELECT message_id FROM parley_messages "
                        f"WHERE session_id = ? AND status IN {_PENDING_SQL} ORDER BY seq LIMIT 1",
                        (sid,),
                    ).fetchone()
                    if busy is not None:
                        raise SessionBusy(
                            f"Session {sid} is busy with message {busy[0]}.",
                            message_id=busy[0],
                        )
                conn.execute("UPDATE parley_sessions SET updated_at = ? WHERE session_id = ?", (now, sid))
            message_id = str(uuid.uuid4())
            message_kind, message_resume = kind, resume_json
            waiting = interrupts.pending(conn, session_id=sid) if session_id is not None else []
            if waiting and kind is MessageKind.CHAT:
                answerable = [i for i in waiting if not InterruptKind(i.kind).operator_only]
                if not answer_interrupts or not answerable:
                    raise SessionInterrupted(
                        f"Session {sid} waits on interrupt {waiting[0].interrupt_id}; answer it with "
                        f"POST /v1/sessions/{sid}/resume"
                        + ("" if answerable else " (an operator's review)")
                        + ".",
                        interrupt_id=waiting[0].interrupt_id,
                        pending=[i.as_api() for i in waiting],
                    )
                # Settings say a chat message answers the interrupt: the text is the resume value.
                target = answerable[0]
                interrupts.claim(
                    conn,
                    session_id=sid,
                    interrupt_id=target.interrupt_id,
                    message_id=message_id,
                    operator=False,
                    now=now,
                )
                message_kind = MessageKind.RESUME
                message_resume = json.dumps({"interrupt_id": target.interrupt_id, "value": content})
            row = conn.execute(
                f"INSERT INTO parley_messages (message_id, session_id, user_id, kind, content, "
                f"resume, status, created_at, updated_at, idempotency_key, request_hash) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_MESSAGE_COLUMNS}",
                (
                    message_id,
                    sid,
                    user_id,
                    message_kind.value,
                    content,
                    message_resume,
                    MessageStatus.QUEUED.value,
                    now,
                    now,
                    idempotency_key,
                    request_hash,
                ),
            ).fetchone()
            record = _message(row)
            if content is not None:
                conn.execute(
                    "INSERT INTO parley_transcript (session_id, position, message_id, role, "
                    "content, created_at) VALUES (?, ?, ?, 'user', ?, ?)",
                    (sid, 2 * record.seq, message_id, content, now),
                )
            return record

        return await self._run(lambda conn: self._write(conn, _tx))

    async def accept_resume(
        self,
        *,
        session_id: str,
        user_id: str,
        operator: bool,
        interrupt_id: str,
        value: Any,
        idempotency_key: str | None = None,
    ) -> MessageRecord:
        """See ``Store.accept_resume``."""
        resume_json = json.dumps({"interrupt_id": interrupt_id, "value": value})
        request_hash = _request_hash(session_id, None, MessageKind.RESUME, resume_json)
        # Rows are the session owner's; an operator's keys are kept apart from the owner's own.
        key = None if idempotency_key is None else f"resume:{user_id}:{idempotency_key}"

        def _tx(conn: sqlite3.Connection) -> MessageRecord:
            now = _now()
            owner = _session_row(conn, session_id=session_id, user_id=user_id, operator=operator)
            if key is not None:
                earlier = _replay(conn, user_id=owner["user_id"], key=key, request_hash=request_hash)
                if earlier is not None:
                    return earlier
            message_id = str(uuid.uuid4())
            interrupts.claim(
                conn,
                session_id=session_id,
                interrupt_id=interrupt_id,
                message_id=message_id,
                operator=operator,
                now=now,
            )
            row = conn.execute(
                "INSERT INTO parley_messages (message_id, session_id, user_id, kind, content, resume, "
                "status, created_at, updated_at, idempotency_key, request_hash, actor) "
                f"VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?) RETURNING {_MESSAGE_COLUMNS}",
                (
                    message_id,
                    session_id,
                    owner["user_id"],
                    MessageKind.RESUME.value,
                    resume_json,
                    MessageStatus.QUEUED.value,
                    now,
                    now,
                    key,
                    request_hash,
                    user_id,
                ),
            ).fetchone()
            conn.execute("UPDATE parley_sessions SET updated_at = ? WHERE session_id = ?", (now, session_id))
            return _message(row)

        return await self._run(lambda conn: self._write(conn, _tx))

    async def list_interrupts(
        self, *, kind: str | None, created_before: datetime | None, session_id: str | None, limit: int
    ) -> list[PendingInterrupt]:
        """See ``Store.list_interrupts``."""
        before = None if created_before is None else format_timestamp(created_before)
        return await self._run(
            lambda conn: interrupts.list_pending(
                conn, kind=kind, created_before=before, session_id=session_id, limit=limit
            )
        )

    async def perform_action(
        self, *, key: str, session_id: str, user_id: str, name: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        """See ``Store.perform_action``."""
        return await self._run(
            lambda conn: self._write(
                conn,
                lambda c: demo_shop.perform(
                    c, key=key, session_id=session_id, user_id=user_id, name=name, args=args, now=_now()
                ),
            )
        )

    async def get_message(self, *, message_id: str, user_id: str, operator: bool = False) -> MessageRecord:
        """See ``Store.get_message``."""

        def _q(conn: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM parley_messages WHERE message_id = ?"
                + ("" if operator else " AND user_id = ?"),
                (message_id,) if operator else (message_id, user_id),
            ).fetchone()
            return row

        row = await self._run(_q)
        if row is None:
            raise NotFound(f"Message {message_id} not found.")
        return _message(row)

    async def load_message(self, *, message_id: str) -> MessageRecord | None:
        """See ``Store.load_message``."""

        def _q(conn: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM parley_messages WHERE message_id = ?",
                (message_id,),
            ).fetchone()
            return row

        row = await self._run(_q)
        return None if row is None else _message(row)

    async def next_pending(self, *, session_id: str) -> PendingHead:
        """See ``Store.next_pending``."""

        def _q(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM parley_messages "
                f"WHERE session_id = ? AND status IN {_PENDING_SQL} ORDER BY seq LIMIT 2",
                (session_id,),
            ).fetchall()

        rows = await self._run(_q)
        return PendingHead(message=_message(rows[0]) if rows else None, more=len(rows) > 1)

    async def sessions_with_pending(self) -> list[str]:
        """See ``Store.sessions_with_pending``."""

        def _q(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT session_id, min(seq) AS first FROM parley_messages "
                f"WHERE status IN {_PENDING_SQL} GROUP BY session_id ORDER BY first"
            ).fetchall()
            return [r[0] for r in rows]

        return await self._run(_q)

    async def _update_message(self, sql: str, params: tuple[Any, ...]) -> MessageRecord | None:
        """One guarded ``UPDATE parley_messages … WHERE`` in its own transaction: the row after it, or
        None when the guard matched nothing (the message was not in the expected status)."""

        def _tx(conn: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = conn.execute(f"{sql} RETURNING {_MESSAGE_COLUMNS}", params).fetchone()
            return row

        row = await self._run(lambda conn: self._write(conn, _tx))
        return None if row is None else _message(row)

    async def mark_running(self, *, message_id: str) -> MessageRecord | None:
        """See ``Store.mark_running``."""
        now = _now()
        return await self._update_message(
            "UPDATE parley_messages SET status = 'running', attempts = attempts + 1, "
            "started_at = coalesce(started_at, ?), updated_at = ? "
            f"WHERE message_id = ? AND status IN {_PENDING_SQL}",
            (now, now, message_id),
        )

    async def release(self, *, message_id: str) -> MessageRecord | None:
        """See ``Store.release``."""
        return await self._update_message(
            "UPDATE parley_messages SET status = 'queued', attempts = max(attempts - 1, 0), "
            "updated_at = ? WHERE message_id = ? AND status = 'running'",
            (_now(), message_id),
        )

    async def cancel_if_queued(self, *, message_id: str) -> MessageRecord | None:
        """See ``Store.cancel_if_queued``."""
        now = _now()
        return await self._update_message(
            "UPDATE parley_messages SET status = 'cancelled', finished_at = ?, updated_at = ?, error = ? "
            "WHERE message_id = ? AND status = 'queued'",
            (now, now, json.dumps(CANCELLED_ERROR), message_id),
        )

    async def finish(
        self,
        *,
        message_id: str,
        status: MessageStatus,
        reply: str | None = None,
        interrupt: list[dict[str, Any]] | None = None,
        error: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
    ) -> MessageRecord | None:
        """See ``Store.finish``."""
        if not status.is_terminal:
            raise ValueError(f"{status} is not a terminal status")
        interrupt_json = None if interrupt is None else json.dumps(interrupt, default=str)
        error_json = None if error is None else json.dumps(error)
        usage_json = None if usage is None else json.dumps(usage)

        def _tx(conn: sqlite3.Connection) -> sqlite3.Row | None:
            now = _now()
            row: sqlite3.Row | None = conn.execute(
                "UPDATE parley_messages SET status = ?, reply = ?, interrupt = ?, error = ?, usage = ?, "
                "finished_at = ?, updated_at = ? "
                f"WHERE message_id = ? AND status IN {_PENDING_SQL} RETURNING {_MESSAGE_COLUMNS}",
                (status.value, reply, interrupt_json, error_json, usage_json, now, now, message_id),
            ).fetchone()
            if row is None:
                return None
            interrupts.record(
                conn,
                session_id=row["session_id"],
                message_id=message_id,
                user_id=row["user_id"],
                interrupts=interrupt or [],
                now=now,
            )
            if reply is not None:
                conn.execute(
                    "INSERT INTO parley_transcript (session_id, position, message_id, role, "
                    "content, created_at) VALUES (?, ?, ?, 'assistant', ?, ?)",
                    (row["session_id"], 2 * row["seq"] + 1, message_id, reply, now),
                )
            conn.execute(
                "UPDATE parley_sessions SET updated_at = ? WHERE session_id = ?",
                (now, row["session_id"]),
            )
            return row

        row = await self._run(lambda conn: self._write(conn, _tx))
        return None if row is None else _message(row)

    # -- sessions -------------------------------------------------------------------------------

    async def get_session(self, *, session_id: str, user_id: str, operator: bool = False) -> SessionRecord:
        """See ``Store.get_session``."""

        def _q(conn: sqlite3.Connection) -> SessionRecord:
            srow = _session_row(conn, session_id=session_id, user_id=user_id, operator=operator)
            counts = conn.execute(
                "SELECT count(*), "
                f"coalesce(sum(status IN {_PENDING_SQL}), 0) "
                "FROM parley_messages WHERE session_id = ?",
                (session_id,),
            ).fetchone()
            last = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM parley_messages WHERE session_id = ? "
                "ORDER BY seq DESC LIMIT 1",
                (session_id,),
            ).fetchone()
            created, updated = _ts(srow["created_at"]), _ts(srow["updated_at"])
            assert created is not None
            assert updated is not None
            return SessionRecord(
                session_id=srow["session_id"],
                user_id=srow["user_id"],
                created_at=created,
                updated_at=updated,
                message_count=int(counts[0]),
                pending_count=int(counts[1]),
                last_message=None if last is None else _message(last),
                interrupts=interrupts.pending(conn, session_id=session_id),
            )

        return await self._run(_q)

    async def list_transcript(
        self, *, session_id: str, user_id: str, after: int | None, limit: int, operator: bool = False
    ) -> TranscriptPage:
        """See ``Store.list_transcript``."""

        def _q(conn: sqlite3.Connection) -> TranscriptPage:
            _session_row(conn, session_id=session_id, user_id=user_id, operator=operator)
            rows = conn.execute(
                "SELECT position, message_id, role, content, created_at FROM parley_transcript "
                "WHERE session_id = ? AND position > ? ORDER BY position LIMIT ?",
                (session_id, -1 if after is None else after, limit + 1),
            ).fetchall()
            items = [
                TranscriptEntry(
                    position=r["position"],
                    message_id=r["message_id"],
                    role=r["role"],
                    content=r["content"],
                    created_at=datetime.fromisoformat(r["created_at"]),
                )
                for r in rows[:limit]
            ]
            more = len(rows) > limit
            return TranscriptPage(items=items, next_position=items[-1].position if more else None)

        return await self._run(_q)

    async def delete_session(self, *, session_id: str, user_id: str) -> None:
        """See ``Store.delete_session``."""

        def _tx(conn: sqlite3.Connection) -> None:
            _session_row(conn, session_id=session_id, user_id=user_id)
            busy = conn.execute(
                f"SELECT message_id FROM parley_messages WHERE session_id = ? "
                f"AND status IN {_PENDING_SQL} LIMIT 1",
                (session_id,),
            ).fetchone()
            if busy is not None:
                raise SessionBusy(
                    f"Session {session_id} has a turn in progress (message {busy[0]}); "
                    "delete it once the turn has ended.",
                    message_id=busy[0],
                )
            conn.execute("DELETE FROM parley_interrupts WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM parley_actions WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM parley_transcript WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM parley_messages WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM parley_sessions WHERE session_id = ?", (session_id,))

        await self._run(lambda conn: self._write(conn, _tx))
