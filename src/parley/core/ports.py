"""The ports: what Parley's core needs from storage (``Store``) and from whoever runs turns (``Runner``).

They live here, with the code that uses them; ``storage/`` and ``runners/`` implement them and import
this module, never the reverse. Every query a caller can reach is scoped by ``user_id`` in the store, so
no router can forget the ownership check: a session of another user is simply not found.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from parley.core.auth import Answerer
from parley.core.events import MessageEvent
from parley.core.records import (
    ApiKey,
    Backlog,
    BranchMarks,
    DeliveryAttempt,
    DeliveryView,
    ImportedSession,
    InterruptView,
    MessageRecord,
    PendingHead,
    PendingInterrupt,
    SessionPage,
    SessionPosition,
    SessionRecord,
    TranscriptPage,
    WebhookDelivery,
)
from parley.core.statuses import MessageKind, MessageStatus


class Store(Protocol):
    """Sessions, messages and the transcript. Implementations must be safe for concurrent tasks."""

    async def open(self) -> None:
        """Connect and apply pending migrations; raise if storage cannot be used."""

    async def close(self) -> None:
        """Release connections; idempotent."""

    async def check_ready(self) -> None:
        """Raise ``StorageUnavailable`` unless storage answers and its schema is current."""

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
        """Record a message as ``queued`` (creating the session when ``session_id`` is None, bound to
        ``graph`` — the default graph when None; an existing session's graph must be ``graph`` when it is
        given, else ``GraphMismatch``).

        One transaction: the ownership check, the busy check, the message row and the user's transcript
        line are written together or not at all. Raises ``NotFound`` or ``SessionBusy``. With an
        ``idempotency_key`` the user used before, returns that earlier message instead (``InvalidInput``
        if the earlier request differed). A chat message to a session waiting on an interrupt is
        ``SessionInterrupted`` — unless ``answer_interrupts``, when it claims the oldest interrupt the user
        may answer and becomes a resume whose value is its text, the interrupt recording ``answerer``.
        With ``max_unfinished``, a session that already holds that many messages not yet ended refuses
        another (``QueueFull``). With a ``callback_url`` (checked by the caller), the message's outcome is
        put in the webhook outbox by the transaction that ends it.
        """

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
        """Record a resume message as ``queued``, claiming the pending interrupt it answers.

        One transaction: the ownership check (skipped for an operator), the claim — ``InterruptNotPending``
        unless the interrupt is pending on this session, ``Forbidden`` for a user answering an operator's
        review (and, with ``reviews_only``, for anything but a review) — and the message row, the
        interrupt recording ``answerer`` and the time. Of two concurrent resumes of one interrupt exactly
        one succeeds.
        """

    async def get_interrupt(
        self, *, interrupt_id: str, user_id: str, operator: bool = False
    ) -> InterruptView:
        """The interrupt, pending or not, with who answered it and when, if it is one of ``user_id``'s
        sessions' (any session's, for an operator); else ``NotFound``."""

    async def create_api_key(self, *, key: ApiKey) -> None:
        """Store a new API key's row (``core.api_keys.KeyStore``)."""

    async def find_api_key(self, *, key_id: str) -> ApiKey | None:
        """The key's row, revoked or not; None if there is none."""

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key, oldest first, revoked ones included."""

    async def revoke_api_key(self, *, key_id: str, now: datetime) -> ApiKey | None:
        """Mark the key revoked (a second revoke keeps the first time); None if there is no such key."""

    async def list_interrupts(
        self,
        *,
        kind: str | None,
        created_before: datetime | None,
        session_id: str | None,
        limit: int,
        graph: str | None = None,
    ) -> list[PendingInterrupt]:
        """Pending interrupts across every session, oldest first (the operator queue), each naming its
        session's graph; with ``graph``, only those of that graph's sessions."""

    async def session_graph(self, *, session_id: str) -> str:
        """The graph a session is bound to (the default graph's name for one made before graphs had names,
        or for no such session)."""

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
        """Run a side effect once per ``key`` and return its result (the first one, on a repeat).

        ``effect`` receives the storage transaction it runs in (``parley.storage.db.Tx`` for the SQL
        stores), so that the effect and the record of it commit together. With the ``message_id`` of the
        turn asking for it, the same transaction also checks and records the turn's side of it:
        ``TurnCancelled`` (nothing done) once a cancel of the turn is recorded, and otherwise, for an
        effect that changes something (``acts``), the mark that makes the turn no longer cancellable
        (``mark_cancel_requested``).
        """

    async def get_message(self, *, message_id: str, user_id: str, operator: bool = False) -> MessageRecord:
        """The message, if it belongs to ``user_id`` (any message, for an operator); else ``NotFound``."""

    async def list_deliveries(
        self, *, message_id: str, user_id: str, operator: bool = False
    ) -> list[DeliveryView]:
        """The message's webhook deliveries with their attempts, if the message is ``user_id``'s (any
        message, for an operator); else ``NotFound``."""

    async def next_pending(self, *, session_id: str) -> PendingHead:
        """The session's oldest message not yet in a terminal status, and whether there are more."""

    async def sessions_with_pending(self) -> list[str]:
        """Every session that has a message not yet in a terminal status (for recovery)."""

    async def backlog(self) -> Backlog:
        """How many messages are queued and interrupts pending, database-wide (for metrics: two counts
        over partial indexes, read every few seconds, never per request)."""

    async def mark_running(self, *, message_id: str) -> MessageRecord | None:
        """Move a pending message to ``running`` and count the attempt; None if already terminal."""

    async def release(self, *, message_id: str) -> MessageRecord | None:
        """Put a ``running`` message back to ``queued`` without counting the attempt (the process is
        stopping; the turn was not at fault). None if it was not running."""

    async def cancel_if_queued(self, *, message_id: str) -> MessageRecord | None:
        """Cancel a message whose turn has not started; None if it is no longer ``queued``.

        A resume gives back the interrupt it claimed, in the same transaction: it is pending again.
        """

    async def mark_cancel_requested(self, *, message_id: str) -> MessageRecord | None:
        """Record that the running turn of ``message_id`` is to be cancelled; None if it has ended.

        ``ActionPerformed`` if the turn has already performed an action (``perform_once``), which
        undoing its state would not undo. Of a cancel and an action, exactly one happens: each checks
        the other's mark in its own transaction.
        """

    async def waits_on_interrupt(self, *, session_id: str) -> bool:
        """Whether the session has a pending interrupt (for the runner: no owner check)."""

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
        """Give a message its terminal status, once: None if it already had one.

        The assistant's transcript line is written in the same transaction, so a reply is in the
        transcript exactly when its message is completed. So are the session's pending interrupts: exactly
        ``interrupt`` — except for a turn that ended ``failed`` or ``cancelled`` with none, which was
        undone: the session then waits on what it waited on before, and an interrupt this message had
        claimed is pending again.
        """

    async def finish_rewind(
        self,
        *,
        message_id: str,
        status: MessageStatus,
        interrupt: list[dict[str, Any]] | None,
        error: dict[str, Any] | None = None,
        branch: BranchMarks | None = None,
    ) -> MessageRecord | None:
        """Give a rewind message its terminal status, once: None if it already had one.

        In the same transaction: the session waits on exactly ``interrupt`` (None: what it waited on is
        left as it was — the rewind moved nothing), and with ``branch`` the transcript lines it left off
        the session's branch are marked (``BranchMarks``).
        """

    async def has_pending(self, *, session_id: str) -> bool:
        """Whether the session has a message not yet in a terminal status (no owner check)."""

    async def append_events(self, *, message_id: str, events: Sequence[tuple[str, Any]]) -> int | None:
        """Store a message's next events (``(kind, JSON-able data)``, in order) and give them the next ids;
        the id of the last one, or None if the message does not exist. Ids are gapless and never reused,
        whichever process appends (the message's ``event_seq`` moves on in the same statement)."""

    async def append_events_of(
        self, *, events: Mapping[str, Sequence[tuple[str, Any]]]
    ) -> dict[str, int | None]:
        """``append_events`` for several messages (by id) at once, all or nothing: the id of each one's
        last event, or None for a message that does not exist."""

    async def read_events(self, *, message_id: str, after: int) -> list[MessageEvent]:
        """The message's stored events with an id above ``after``, in order (no owner check: callers
        have read the message as its viewer first)."""

    async def prune_events(self, *, finished_before: datetime) -> int:
        """Delete the stored events of messages that ended before ``finished_before``; rows deleted."""

    async def get_session(self, *, session_id: str, user_id: str, operator: bool = False) -> SessionRecord:
        """The session with its derived status, if it belongs to ``user_id`` (any, for an operator)."""

    async def list_transcript(
        self, *, session_id: str, user_id: str, after: int | None, limit: int, operator: bool = False
    ) -> TranscriptPage:
        """The transcript, oldest first, starting after position ``after``."""

    async def delete_session(self, *, session_id: str, user_id: str) -> None:
        """Remove the session and its rows. ``SessionBusy`` while a turn is pending."""

    async def list_sessions(self, *, user_id: str, after: SessionPosition | None, limit: int) -> SessionPage:
        """Up to ``limit`` of ``user_id``'s sessions, most recent activity first (ties: by session id,
        descending), starting after position ``after``; one query, however many sessions are listed.

        Activity is what moves a session's ``updated_at``: a message accepted, a turn ended, a queued
        message cancelled.
        """


class Outbox(Protocol):
    """The webhook deliveries waiting to be sent, for the process that sends them."""

    async def claim(
        self, *, owner: str, now: datetime, lease_seconds: float, limit: int
    ) -> list[WebhookDelivery]:
        """Up to ``limit`` deliveries that are due and not leased by another live process, leased to
        ``owner`` for ``lease_seconds``; each one's ``attempts`` already counts the attempt about to be
        made. Processes claiming at once get different rows."""

    async def record_attempt(
        self, *, delivery: WebhookDelivery, attempt: DeliveryAttempt, next_attempt_at: datetime | None
    ) -> None:
        """Keep the attempt; the delivery ends (``delivered``, ``failed``) or is due again at
        ``next_attempt_at`` (``retry``), unleased."""

    async def release(self, *, owner: str, delivery_ids: list[str]) -> None:
        """Let go of ``owner``'s leases on deliveries it did not send (it is stopping)."""

    async def prune(self, *, finished_before: datetime) -> int:
        """Delete deliveries that ended before ``finished_before``, with their attempts; how many."""


class CheckpointPruner(Protocol):
    """Deletes a session's checkpoints beyond its latest ones, in the checkpointer's storage."""

    async def prune(self, *, session_id: str, keep: int) -> int:
        """Delete the session's checkpoints (and their writes and blobs) older than its ``keep`` newest,
        unless a message of the session is queued or running; rows deleted. Never the head, nor what a
        turn starting meanwhile continues from."""


class Runner(Protocol):
    """Runs every pending message of a session, one at a time, in arrival order."""

    async def start(self) -> None:
        """Begin running; pick up messages a previous process left pending."""

    async def notify(self, session_id: str) -> None:
        """A message was accepted for ``session_id``: make sure its turns get run."""

    async def cancel(self, message_id: str) -> None:
        """Cancel the message's turn wherever it runs or is about to run."""

    async def stop(self, *, grace: float) -> None:
        """Stop taking turns; give running ones ``grace`` seconds, leave the rest pending."""

    @property
    def running(self) -> bool:
        """Whether the runner is accepting work (for readiness)."""


class SessionTransfer(Protocol):
    """A session as one portable document (docs/api.md, "The session document"), out and back in."""

    async def open_export(self, *, session_id: str, user_id: str, operator: bool) -> AsyncIterator[bytes]:
        """The session's document, as bytes to stream. ``NotFound`` unless the caller may read the session,
        ``SessionBusy`` while a turn is queued or running — both before the first byte. Should the session
        change while it streams, the stream stops before the checksum (an import refuses the document)."""

    async def import_document(self, *, source: Path, replace: bool) -> ImportedSession:
        """Create the session the document at ``source`` holds, all of it or nothing.

        ``InvalidInput`` (with the document path at fault) if any part of it is malformed, of the wrong
        type, of a newer version or graph, or fails its checksum — checked in full before anything is
        written; ``Conflict`` if the session id is in use (unless ``replace``: then that session is
        replaced, ``SessionBusy`` mid-turn).
        """
