"""Plain records the ``Store`` port returns: no ORM objects, no connections, safe to pass between layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from parley.core.statuses import MessageKind, MessageStatus, SessionStatus


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message and the turn it started."""

    message_id: str
    session_id: str
    user_id: str
    seq: int
    kind: MessageKind
    content: str | None
    status: MessageStatus
    reply: str | None
    interrupt: list[dict[str, Any]] | None
    error: dict[str, Any] | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    resume: Any = None
    actor: str | None = None
    usage: dict[str, Any] | None = None
    cancel_requested: bool = False
    """A cancel was asked for while the turn ran (possibly in another process)."""
    event_seq: int = 0
    """The id of the message's latest stored event (0: none yet); see ``Store.append_events``."""


@dataclass(frozen=True, slots=True)
class PendingHead:
    """A session's oldest pending message, and whether another is pending behind it."""

    message: MessageRecord | None
    more: bool


@dataclass(frozen=True, slots=True)
class PendingInterrupt:
    """An interrupt a session waits on, until a resume claims it."""

    interrupt_id: str
    session_id: str
    message_id: str
    user_id: str
    kind: str
    value: Any
    created_at: datetime

    def as_api(self) -> dict[str, Any]:
        """The ``{id, value, kind}`` form messages and sessions show."""
        return {"id": self.interrupt_id, "value": self.value, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session as stored, with what its messages say about it."""

    session_id: str
    user_id: str
    created_at: datetime
    updated_at: datetime
    message_count: int = 0
    pending_count: int = 0
    last_message: MessageRecord | None = None
    interrupts: list[PendingInterrupt] = field(default_factory=list)

    @property
    def status(self) -> SessionStatus:
        """Derived, never stored, so it cannot drift from the messages it summarises."""
        if self.pending_count:
            return SessionStatus.BUSY
        if self.interrupts:
            return SessionStatus.INTERRUPTED
        if self.last_message is not None and self.last_message.status is MessageStatus.FAILED:
            return SessionStatus.ERROR
        return SessionStatus.IDLE

    @property
    def pending_interrupts(self) -> list[dict[str, Any]]:
        """The interrupts the session waits on, oldest first."""
        return [i.as_api() for i in self.interrupts]


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One line of the conversation as the user sees it."""

    position: int
    message_id: str
    role: str
    content: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TranscriptPage:
    """A page of the transcript and the position to continue after, if there is more."""

    items: list[TranscriptEntry] = field(default_factory=list)
    next_position: int | None = None
