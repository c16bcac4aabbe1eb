"""Message and session statuses, defined once and imported everywhere."""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    """Where a message's turn is. A message ends in exactly one terminal status."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[MessageStatus] = frozenset(
    {
        MessageStatus.COMPLETED,
        MessageStatus.INTERRUPTED,
        MessageStatus.FAILED,
        MessageStatus.CANCELLED,
    }
)
PENDING_STATUSES: frozenset[MessageStatus] = frozenset({MessageStatus.QUEUED, MessageStatus.RUNNING})


class SessionStatus(StrEnum):
    """A session's status, derived from its messages."""

    IDLE = "idle"
    BUSY = "busy"
    INTERRUPTED = "interrupted"
    ERROR = "error"


def session_status(
    *, pending_count: int, interrupted: bool, last_status: MessageStatus | None
) -> SessionStatus:
    """A session's status from what its messages say: ``busy`` while a message is pending, else
    ``interrupted`` while an interrupt is, else ``error`` if the last message failed, else ``idle``.

    Derived, never stored, so it cannot drift from the messages it summarises; written once, for the
    session resource and the session list alike.
    """
    if pending_count:
        return SessionStatus.BUSY
    if interrupted:
        return SessionStatus.INTERRUPTED
    if last_status is MessageStatus.FAILED:
        return SessionStatus.ERROR
    return SessionStatus.IDLE


class MessageKind(StrEnum):
    """What started a turn."""

    CHAT = "chat"
    RESUME = "resume"


CANCELLED_ERROR = {"type": "cancelled", "detail": "The turn was cancelled by request."}
"""The ``error`` of a cancelled message, so a client can tell why it has no reply."""


class InterruptKind(StrEnum):
    """What an interrupt waits for, read from its payload's ``kind`` (``input`` when it has none)."""

    CONFIRM = "confirm"
    """The end user confirms an action."""
    REVIEW = "review"
    """An operator reviews a draft; only operators may answer it."""
    BREAKPOINT = "breakpoint"
    """A static breakpoint from settings."""
    INPUT = "input"
    """Anything else a graph asks for."""

    @classmethod
    def of(cls, value: object) -> InterruptKind:
        kind = value.get("kind") if isinstance(value, dict) else None
        try:
            return cls(kind) if isinstance(kind, str) else cls.INPUT
        except ValueError:
            return cls.INPUT

    @property
    def operator_only(self) -> bool:
        return self is InterruptKind.REVIEW
