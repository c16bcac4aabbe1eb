"""``SqlStore``: the ``Store`` port over any ``Database`` — one set of queries for SQLite and PostgreSQL.

Each method is one transaction — or, for the one-statement calls every turn makes, one statement on its
own, as atomic and cheaper (``Database.one_statement``). The domain decisions inside it (may this
message be accepted, which interrupt does a chat answer, who may answer a review) are ``core.rules``;
this module only reads what they need and writes what they decide.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from parley.core import rules
from parley.core.auth import Answerer
from parley.core.errors import NotFound, StorageUnavailable
from parley.core.events import MessageEvent
from parley.core.records import (
    ApiKey,
    Backlog,
    BranchMarks,
    DeliveryView,
    InterruptView,
    MessageRecord,
    PendingHead,
    PendingInterrupt,
    SessionPage,
    SessionPosition,
    SessionRecord,
    TranscriptPage,
)
from parley.core.statuses import MessageKind, MessageStatus
from parley.core.timestamps import format_timestamp, utc_now
from parley.settings import DEFAULT_GRAPH_NAME
from parley.storage import (
    actions,
    api_keys,
    interrupts,
    message_events,
    messages,
    rows,
    sessions,
    transcript,
    webhooks,
)
from parley.storage.db import Database, Duplicate, Tx

T = TypeVar("T")


def _callback(url: str | None) -> tuple[str, ...]:
    # Part of what an idempotent repeat must match, when there is one; without one, the fingerprint is
    # the one earlier releases stored.
    return () if url is None else (url,)


class SqlStore:
    """Parley's tables in a SQL database (see the module docstring)."""

    def __init__(self, db: Database, *, default_graph: str = DEFAULT_GRAPH_NAME) -> None:
        self._db = db
        # What a session without a graph name (made before graphs had names) is bound to.
        self._default_graph = default_graph
        self._delivery_listeners: list[Callable[[], None]] = []

    def on_delivery_recorded(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each commit that put a webhook delivery in the outbox (a message with a
        ``callback_url`` ended), so that this process's deliverer sends it at once instead of at its next
        look."""
        self._delivery_listeners.append(listener)

    def _ended(self, record: MessageRecord | None) -> MessageRecord | None:
        if record is not None and record.callback_url is not None:
            for listener in self._delivery_listeners:
                listener()
        return record

    @property
    def db(self) -> Database:
        """The database underneath (for the parts of Parley that share it, such as a graph's effects)."""
        return self._db

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        await self._db.open(migrate=True)

    async def close(self) -> None:
        """Release connections; idempotent."""
        await self._db.close()

    async def check_ready(self) -> None:
        """Raise ``StorageUnavailable`` unless the database answers with the latest schema."""
        version = await self._db.schema_version()
        latest = await self._db.latest_version()
        # A newer schema is fine: during a rolling deploy the release step migrates first, and instances of
        # the previous release keep serving (migrations only add). An older one lacks what this code needs.
        if version < latest:
            raise StorageUnavailable(f"Schema version {version}, expected {latest}; run `parley migrate`.")

    async def _write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._db.transaction() as tx:
            return await fn(tx)

    async def _read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._db.read() as tx:
            return await fn(tx)

    async def _one_statement(self, fn: Callable[[Tx], Awaitable[T]], *, writes: bool = False) -> T:
        # For the calls every turn makes that are one statement each: on PostgreSQL no transaction
        # around it, two round trips fewer.
        async with self._db.one_statement(writes=writes) as tx:
            return await fn(tx)

    async def _write_idempotent(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        # Two requests with one idempotency key at once: the loser's insert hits the unique index;
        # run again, it finds the winner's message and returns that.
        try:
            return await self._write(fn)
        except Duplicate:
            return await self._write(fn)

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
        max_unfinished: int | None = None,
        answerer: Answerer | None = None,
        callback_url: str | None = None,
        graph: str | None = None,
    ) -> MessageRecord:
        """See ``Store.accept_message``."""
        resume_json = rows.dumps(resume)
        graph_part = () if graph is None else ("graph:" + graph,)
        fingerprint = messages.request_hash(
            session_id, content, kind, resume_json, *_callback(callback_url), *graph_part
        )

        async def _tx(tx: Tx) -> MessageRecord:
            if idempotency_key is not None:
                earlier = await messages.replay(
                    tx, user_id=user_id, key=idempotency_key, request_hash=fingerprint
                )
                if earlier is not None:
                    return earlier
            message_kind, message_resume = kind, resume_json
            target: PendingInterrupt | None = None
            if session_id is None:
                now = utc_now()
                sid = await sessions.create(tx, user_id=user_id, now=now, graph=graph or self._default_graph)
            else:
                sid = session_id
                row = await sessions.visible(tx, session_id=sid, user_id=user_id, lock=True)
                rules.check_graph(session_id=sid, bound=row["graph"] or self._default_graph, requested=graph)
                # Read the clock once the session is locked: messages of a session are then stamped
                # in the order they get their seq.
                now = utc_now()
                if reject_if_busy:
                    pending_id = await messages.first_pending_id(tx, session_id=sid)
                    rules.check_not_busy(session_id=sid, pending_message_id=pending_id)
                elif max_unfinished is not None:
                    unfinished = await messages.unfinished_count(tx, session_id=sid, limit=max_unfinished)
                    rules.check_queue_room(session_id=sid, unfinished=unfinished, limit=max_unfinished)
                await sessions.touch(tx, session_id=sid, now=now)
                if kind is MessageKind.CHAT:
                    waiting = await interrupts.pending(tx, session_id=sid)
                    target = rules.chat_target(
                        session_id=sid, waiting=waiting, answer_interrupts=answer_interrupts
                    )
            if target is not None:
                message_kind = MessageKind.RESUME
                message_resume = rows.dumps({"interrupt_id": target.interrupt_id, "value": content})
            record = await messages.insert(
                tx,
                session_id=sid,
                user_id=user_id,
                kind=message_kind,
                content=content,
                resume=message_resume,
                idempotency_key=idempotency_key,
                request_hash=fingerprint,
                actor=None,
                now=now,
                callback_url=callback_url,
            )
            if target is not None:
                await interrupts.claim(
                    tx,
                    session_id=sid,
                    interrupt_id=target.interrupt_id,
                    message_id=record.message_id,
                    answerer=answerer,
                    now=now,
                )
            if content is not None:
                await transcript.add(
                    tx,
                    session_id=sid,
                    seq=record.seq,
                    message_id=record.message_id,
                    role="user",
                    content=content,
                    now=now,
                )
            return record

        return await self._write_idempotent(_tx)

    async def accept_resume(
        self,
        *,
        session_id: str,
        user_id: str,
        operator: bool,
        interrupt_id: str,
        value: Any,
        idempotency_key: str | None = None,
        answerer: Answerer | None = None,
        reviews_only: bool = False,
        callback_url: str | None = None,
    ) -> MessageRecord:
        """See ``Store.accept_resume``."""
        resume_json = rows.dumps({"interrupt_id": interrupt_id, "value": value})
        fingerprint = messages.request_hash(
            session_id, None, MessageKind.RESUME, resume_json, *_callback(callback_url)
        )
        # Rows are the session owner's; an operator's keys are kept apart from the owner's own.
        key = None if idempotency_key is None else f"resume:{user_id}:{idempotency_key}"

        async def _tx(tx: Tx) -> MessageRecord:
            owner = await sessions.visible(
                tx, session_id=session_id, user_id=user_id, operator=operator, lock=True
            )
            now = utc_now()
            if key is not None:
                earlier = await messages.replay(
                    tx, user_id=owner["user_id"], key=key, request_hash=fingerprint
                )
                if earlier is not None:
                    return earlier
            found = await interrupts.find(tx, session_id=session_id, interrupt_id=interrupt_id)
            if found is None or found[1] != "pending":
                state = "unknown" if found is None else found[1]
                raise await interrupts.not_pending(
                    tx, session_id=session_id, interrupt_id=interrupt_id, state=state
                )
            rules.check_may_answer(found[0], operator=operator, reviews_only=reviews_only)
            record = await messages.insert(
                tx,
                session_id=session_id,
                user_id=owner["user_id"],
                kind=MessageKind.RESUME,
                content=None,
                resume=resume_json,
                idempotency_key=key,
                request_hash=fingerprint,
                actor=user_id,
                now=now,
                callback_url=callback_url,
            )
            await interrupts.claim(
                tx,
                session_id=session_id,
                interrupt_id=interrupt_id,
                message_id=record.message_id,
                answerer=answerer,
                now=now,
            )
            await sessions.touch(tx, session_id=session_id, now=now)
            return record

        return await self._write_idempotent(_tx)

    async def list_interrupts(
        self,
        *,
        kind: str | None,
        created_before: datetime | None,
        session_id: str | None,
        limit: int,
        graph: str | None = None,
    ) -> list[PendingInterrupt]:
        """See ``Store.list_interrupts``."""
        return await self._read(
            lambda tx: interrupts.queue(
                tx,
                kind=kind,
                created_before=created_before,
                session_id=session_id,
                limit=limit,
                graph=graph,
                default_graph=self._default_graph,
            )
        )

    async def session_graph(self, *, session_id: str) -> str:
        """See ``Store.session_graph``."""
        found = await self._read(lambda tx: sessions.graph_of(tx, session_id=session_id))
        return found or self._default_graph

    async def get_interrupt(
        self, *, interrupt_id: str, user_id: str, operator: bool = False
    ) -> InterruptView:
        """See ``Store.get_interrupt``."""
        found = await self._read(
            lambda tx: interrupts.view(tx, interrupt_id=interrupt_id, user_id=user_id, operator=operator)
        )
        if found is None:
            raise NotFound(f"Interrupt {interrupt_id} not found.")
        return found

    # -- API keys -------------------------------------------------------------------------------

    async def create_api_key(self, *, key: ApiKey) -> None:
        """See ``Store.create_api_key``."""
        await self._write(lambda tx: api_keys.insert(tx, key=key))

    async def find_api_key(self, *, key_id: str) -> ApiKey | None:
        """See ``Store.find_api_key``."""
        return await self._one_statement(lambda tx: api_keys.find(tx, key_id=key_id))

    async def list_api_keys(self) -> list[ApiKey]:
        """See ``Store.list_api_keys``."""
        return await self._read(api_keys.all_keys)

    async def revoke_api_key(self, *, key_id: str, now: datetime) -> ApiKey | None:
        """See ``Store.revoke_api_key``."""
        return await self._write(lambda tx: api_keys.revoke(tx, key_id=key_id, now=now))

    async def perform_once(
        self,
        *,
        key: str,
        session_id: str,
        name: str,
        args: dict[str, Any],
        effect: Callable[[Any], Awaitable[dict[str, Any]]],
        message_id: str | None = None,
        acts: bool = True,
    ) -> dict[str, Any]:
        """See ``Store.perform_once``."""

        async def _tx(tx: Tx) -> dict[str, Any]:
            now = utc_now()
            if message_id is not None:
                await messages.check_may_act(tx, message_id=message_id, name=name)
            result = await actions.perform_once(
                tx, key=key, session_id=session_id, name=name, args=args, effect=effect, now=now
            )
            if message_id is not None and acts:
                # A repeat that found the earlier result counts too: the turn's state now holds the outcome.
                await messages.mark_acted(tx, message_id=message_id, now=now)
            return result

        return await self._write(_tx)

    async def get_message(self, *, message_id: str, user_id: str, operator: bool = False) -> MessageRecord:
        """See ``Store.get_message``."""
        record = await self._one_statement(
            lambda tx: messages.get(tx, message_id=message_id, user_id=None if operator else user_id)
        )
        if record is None:
            raise NotFound(f"Message {message_id} not found.")
        return record

    async def list_deliveries(
        self, *, message_id: str, user_id: str, operator: bool = False
    ) -> list[DeliveryView]:
        """See ``Store.list_deliveries``."""

        async def _q(tx: Tx) -> list[DeliveryView]:
            if await messages.get(tx, message_id=message_id, user_id=None if operator else user_id) is None:
                raise NotFound(f"Message {message_id} not found.")
            return await webhooks.of_message(tx, message_id=message_id)

        return await self._read(_q)

    async def next_pending(self, *, session_id: str) -> PendingHead:
        """See ``Store.next_pending``."""
        head, more = await self._one_statement(lambda tx: messages.pending_head(tx, session_id=session_id))
        return PendingHead(message=head, more=more)

    async def sessions_with_pending(self) -> list[str]:
        """See ``Store.sessions_with_pending``."""
        return await self._read(messages.sessions_with_pending)

    async def backlog(self) -> Backlog:
        """See ``Store.backlog``."""
        return await self._read(messages.backlog)

    async def mark_running(self, *, message_id: str) -> MessageRecord | None:
        """See ``Store.mark_running``."""
        return await self._one_statement(
            lambda tx: messages.mark_running(tx, message_id=message_id, now=utc_now()), writes=True
        )

    async def release(self, *, message_id: str) -> MessageRecord | None:
        """See ``Store.release``."""
        return await self._one_statement(
            lambda tx: messages.release(tx, message_id=message_id, now=utc_now()), writes=True
        )

    async def cancel_if_queued(self, *, message_id: str) -> MessageRecord | None:
        """See ``Store.cancel_if_queued``."""

        async def _tx(tx: Tx) -> MessageRecord | None:
            now = utc_now()
            cancelled = await messages.cancel_if_queued(tx, message_id=message_id, now=now)
            if cancelled is None:
                return None
            if cancelled.kind is MessageKind.RESUME:
                # The resume never ran: the interrupt it claimed is waiting for an answer again.
                await interrupts.release_claim(tx, message_id=message_id, now=now)
            # The message ended without a turn (which would have touched the session in ``finish``): the
            # session's status may have changed, and its last activity moves with it.
            await sessions.touch(tx, session_id=cancelled.session_id, now=now)
            return cancelled

        return self._ended(await self._write(_tx))

    async def mark_cancel_requested(self, *, message_id: str) -> MessageRecord | None:
        """See ``Store.mark_cancel_requested``."""
        return await self._write(
            lambda tx: messages.mark_cancel_requested(tx, message_id=message_id, now=utc_now())
        )

    async def waits_on_interrupt(self, *, session_id: str) -> bool:
        """See ``Store.waits_on_interrupt``."""
        return await self._one_statement(lambda tx: interrupts.any_pending(tx, session_id=session_id))

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

        async def _tx(tx: Tx) -> MessageRecord | None:
            now = utc_now()
            record = await messages.finish(
                tx,
                message_id=message_id,
                status=status,
                reply=reply,
                interrupt=interrupt,
                error=error,
                usage=usage,
                now=now,
            )
            if record is None:
                return None
            if interrupt is None and status in (MessageStatus.FAILED, MessageStatus.CANCELLED):
                # The turn was undone without asking anything again: the session waits on what it
                # waited on before, including what this message claimed.
                await interrupts.release_claim(tx, message_id=message_id, now=now)
            else:
                await interrupts.record(
                    tx,
                    session_id=record.session_id,
                    message_id=message_id,
                    user_id=record.user_id,
                    interrupts=interrupt or [],
                    now=now,
                )
            if reply is not None:
                await transcript.add(
                    tx,
                    session_id=record.session_id,
                    seq=record.seq,
                    message_id=message_id,
                    role="assistant",
                    content=reply,
                    now=now,
                )
            await sessions.touch(tx, session_id=record.session_id, now=now)
            return record

        return self._ended(await self._write(_tx))

    async def finish_rewind(
        self,
        *,
        message_id: str,
        status: MessageStatus,
        interrupt: list[dict[str, Any]] | None,
        error: dict[str, Any] | None = None,
        branch: BranchMarks | None = None,
    ) -> MessageRecord | None:
        """See ``Store.finish_rewind``."""
        if not status.is_terminal:
            raise ValueError(f"{status} is not a terminal status")

        async def _tx(tx: Tx) -> MessageRecord | None:
            now = utc_now()
            record = await messages.finish(
                tx,
                message_id=message_id,
                status=status,
                reply=None,
                interrupt=interrupt if status is MessageStatus.INTERRUPTED else None,
                error=error,
                usage=None,
                now=now,
            )
            if record is None:
                return None
            if interrupt is not None:
                await interrupts.record(
                    tx,
                    session_id=record.session_id,
                    message_id=message_id,
                    user_id=record.user_id,
                    interrupts=interrupt,
                    now=now,
                )
            if branch is not None:
                owner = (
                    None
                    if branch.owner_id is None
                    else await messages.get(tx, message_id=branch.owner_id, user_id=None)
                )
                await transcript.mark_branch(
                    tx,
                    session_id=record.session_id,
                    rewind_seq=record.seq,
                    owner_seq=0 if owner is None else owner.seq,
                    marks=branch,
                    rewind_id=message_id,
                    now=now,
                )
            await sessions.touch(tx, session_id=record.session_id, now=now)
            return record

        return self._ended(await self._write(_tx))

    async def has_pending(self, *, session_id: str) -> bool:
        """See ``Store.has_pending``."""
        return (
            await self._one_statement(lambda tx: messages.first_pending_id(tx, session_id=session_id))
            is not None
        )

    # -- events ---------------------------------------------------------------------------------

    async def append_events(self, *, message_id: str, events: Sequence[tuple[str, Any]]) -> int | None:
        """See ``Store.append_events``."""
        if not events:
            raise ValueError("no events to append")
        return await self._one_statement(
            lambda tx: message_events.append(tx, message_id=message_id, events=events, now=utc_now()),
            writes=True,
        )

    async def append_events_of(
        self, *, events: Mapping[str, Sequence[tuple[str, Any]]]
    ) -> dict[str, int | None]:
        """See ``Store.append_events_of``."""
        if not events or not all(events.values()):
            raise ValueError("no events to append")
        # One statement on PostgreSQL; on SQLite ``one_statement`` is a transaction, as for append_events.
        return await self._one_statement(
            lambda tx: message_events.append_many(tx, events=events, now=utc_now()), writes=True
        )

    async def read_events(self, *, message_id: str, after: int) -> list[MessageEvent]:
        """See ``Store.read_events``."""
        return await self._one_statement(
            lambda tx: message_events.read(tx, message_id=message_id, after=after)
        )

    async def prune_events(self, *, finished_before: datetime) -> int:
        """See ``Store.prune_events``."""
        cutoff = format_timestamp(finished_before)
        return await self._one_statement(
            lambda tx: message_events.prune(tx, finished_before=cutoff), writes=True
        )

    # -- sessions -------------------------------------------------------------------------------

    async def get_session(self, *, session_id: str, user_id: str, operator: bool = False) -> SessionRecord:
        """See ``Store.get_session``."""

        async def _q(tx: Tx) -> SessionRecord:
            row = await sessions.visible(tx, session_id=session_id, user_id=user_id, operator=operator)
            return await sessions.view(tx, row=row, default_graph=self._default_graph)

        return await self._read(_q)

    async def list_transcript(
        self, *, session_id: str, user_id: str, after: int | None, limit: int, operator: bool = False
    ) -> TranscriptPage:
        """See ``Store.list_transcript``."""

        async def _q(tx: Tx) -> TranscriptPage:
            await sessions.visible(tx, session_id=session_id, user_id=user_id, operator=operator)
            return await transcript.page(tx, session_id=session_id, after=after, limit=limit)

        return await self._read(_q)

    async def delete_session(self, *, session_id: str, user_id: str) -> None:
        """See ``Store.delete_session``."""

        async def _tx(tx: Tx) -> None:
            await sessions.visible(tx, session_id=session_id, user_id=user_id, lock=True)
            pending_id = await messages.first_pending_id(tx, session_id=session_id)
            rules.check_deletable(session_id=session_id, pending_message_id=pending_id)
            await sessions.delete(tx, session_id=session_id)

        await self._write(_tx)

    async def list_sessions(self, *, user_id: str, after: SessionPosition | None, limit: int) -> SessionPage:
        """See ``Store.list_sessions``."""
        return await self._one_statement(
            lambda tx: sessions.page(tx, user_id=user_id, after=after, limit=limit)
        )
