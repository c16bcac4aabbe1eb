"""Domain rules that decide what a message may do to a session, written once for every backend.

Storage calls these inside its transactions, with what it read there, so the decision and the write
that follows are atomic; the rules themselves know nothing of SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.core.auth import CallerRole, RoleForbidden
from parley.core.errors import Forbidden, GraphMismatch, QueueFull, SessionBusy, SessionInterrupted
from parley.core.records import PendingInterrupt
from parley.core.redaction import interrupts_for_viewer
from parley.core.statuses import InterruptKind


def check_not_busy(*, session_id: str, pending_message_id: str | None) -> None:
    """The ``reject`` busy policy: refuse a message while another of the session's is pending."""
    if pending_message_id is not None:
        raise SessionBusy(
            f"Session {session_id} is busy with message {pending_message_id}.",
            message_id=pending_message_id,
        )


def check_graph(*, session_id: str, bound: str, requested: str | None) -> None:
    """A session runs the graph it was created with: a message naming another is refused, never rerouted
    (the other graph could not read this one's checkpoints)."""
    if requested is not None and requested != bound:
        raise GraphMismatch(
            f"Session {session_id} belongs to the graph {bound!r}; a message to it cannot name "
            f"{requested!r}. Start a new session (no session_id) to talk to another graph.",
            graph=bound,
        )


QUEUE_FULL_RETRY_SECONDS = 5
"""What a refused message's ``Retry-After`` says: about a turn's time, after which one has likely ended."""


def check_queue_room(*, session_id: str, unfinished: int, limit: int) -> None:
    """A session holds at most ``limit`` messages not yet ended (the running one included): past that a
    caller that never waits for replies would queue work without bound."""
    if unfinished >= limit:
        raise QueueFull(
            f"Session {session_id} already holds {limit} unfinished messages "
            "(PARLEY_MAX_QUEUED_PER_SESSION); send more once some have ended.",
            retry_after=QUEUE_FULL_RETRY_SECONDS,
            limit=limit,
        )


def check_deletable(*, session_id: str, pending_message_id: str | None) -> None:
    """A session is deleted only between turns: a running turn would write into what was deleted."""
    if pending_message_id is not None:
        raise SessionBusy(
            f"Session {session_id} has a turn in progress (message {pending_message_id}); "
            "delete it once the turn has ended.",
            message_id=pending_message_id,
        )


def chat_target(
    *, session_id: str, waiting: Sequence[PendingInterrupt], answer_interrupts: bool
) -> PendingInterrupt | None:
    """What a chat message to a session does when the session waits on interrupts.

    None: the session waits on nothing, the message is an ordinary chat. Otherwise the interrupt the
    message answers (settings say a chat answers the oldest interrupt the user may answer) — or
    ``SessionInterrupted``, naming what the session waits on.
    """
    if not waiting:
        return None
    answerable = [i for i in waiting if not InterruptKind(i.kind).operator_only]
    if answer_interrupts and answerable:
        return answerable[0]
    raise SessionInterrupted(
        f"Session {session_id} waits on interrupt {waiting[0].interrupt_id}; answer it with "
        f"POST /v1/sessions/{session_id}/resume" + ("" if answerable else " (an operator's review)") + ".",
        interrupt_id=waiting[0].interrupt_id,
        # A chat message comes from the end user: an operator's review shows as pending, never its draft.
        pending=interrupts_for_viewer([i.as_api() for i in waiting], operator=False),
    )


def check_may_answer(interrupt: PendingInterrupt, *, operator: bool, reviews_only: bool = False) -> None:
    """An operator's review is answered by an operator only; everything else by either — except by a
    caller that answers ``reviews_only`` (an operator's key: ``auth.answers_reviews_only``)."""
    operator_only = InterruptKind(interrupt.kind).operator_only
    if operator_only and not operator:
        raise Forbidden(f"Interrupt {interrupt.interrupt_id} waits for an operator's review.")
    if reviews_only and not operator_only:
        raise RoleForbidden(
            f"Interrupt {interrupt.interrupt_id} is the end user's to answer; an operator key answers "
            "operators' reviews only.",
            required_roles=sorted(r.value for r in (CallerRole.SERVICE, CallerRole.USER, CallerRole.ADMIN)),
        )
