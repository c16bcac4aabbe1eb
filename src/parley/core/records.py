"""Plain records the ``Store`` port returns: no ORM objects, no connections, safe to pass between layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from parley.core.auth import Answerer
from parley.core.statuses import MessageKind, MessageStatus, SessionStatus, session_status
from parley.core.titles import title_of


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
    callback_url: str | None = None
    """Where the message's outcome is posted when it ends (a completion webhook); None: nowhere."""


@dataclass(frozen=True, slots=True)
class PendingHead:
    """A session's oldest pending message, and whether another is pending behind it."""

    message: MessageRecord | None
    more: bool


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits across the whole database: messages not started yet, interrupts not answered yet."""

    queued_messages: int
    pending_interrupts: int


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
    graph: str | None = None
    """The session's graph, where the query read it (the operator queue)."""

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
    graph: str = ""
    """The hosted graph the session is bound to (``PARLEY_GRAPHS``)."""
    message_count: int = 0
    pending_count: int = 0
    last_message: MessageRecord | None = None
    interrupts: list[PendingInterrupt] = field(default_factory=list)

    @property
    def status(self) -> SessionStatus:
        """Derived, never stored (``statuses.session_status``)."""
        return session_status(
            pending_count=self.pending_count,
            interrupted=bool(self.interrupts),
            last_status=None if self.last_message is None else self.last_message.status,
        )

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
    rewound_at: datetime | None = None
    """When a rewind left this line off the session's current branch (None: it is on it)."""
    rewound_by: str | None = None
    """The rewind message that did."""


@dataclass(frozen=True, slots=True)
class BranchMarks:
    """What a rewind changes in the transcript: which lines are on the branch it moved the session to.

    ``owner_id`` is the message whose turn wrote the checkpoint the session continues from (None: no
    Parley message did). Lines of messages after it, up to the rewind, leave the branch; of the owner's
    own lines, the user's stays if its input is in that state (``owner_input``) and the reply if the turn
    had ended there (``owner_reply``); lines of ``on_branch`` messages (the ancestors the rewind could
    see) are on the branch again.
    """

    owner_id: str | None
    owner_input: bool
    owner_reply: bool
    on_branch: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CheckpointEntry:
    """One checkpoint of a session's graph state, as ``GET /v1/sessions/{id}/history`` shows it."""

    checkpoint_id: str
    parent_checkpoint_id: str | None
    step: int | None
    source: str | None
    node: str | None
    message_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CheckpointPage:
    """A page of a session's checkpoints, newest first, and the checkpoint to continue before."""

    items: list[CheckpointEntry] = field(default_factory=list)
    next_before: str | None = None


@dataclass(frozen=True, slots=True)
class TranscriptPage:
    """A page of the transcript and the position to continue after, if there is more."""

    items: list[TranscriptEntry] = field(default_factory=list)
    next_position: int | None = None


@dataclass(frozen=True, slots=True)
class SessionPosition:
    """Where a session stands in its user's list: its last activity, then its id (ties).

    ``last_activity`` is the text storage holds, not a parsed time: the next page starts after exactly
    this position in the order the database sorts, whatever form an older row's timestamp was written in.
    """

    last_activity: str
    session_id: str


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A session as its user's list shows it: what ``SessionRecord`` says about it, in brief, and a title."""

    session_id: str
    user_id: str
    created_at: datetime
    last_activity_at: datetime
    message_count: int
    pending_count: int
    interrupted: bool
    """Whether an interrupt is pending."""
    last_status: MessageStatus | None
    """The status of the session's latest message (None: it has none)."""
    first_message_start: str | None
    """The start of the user's first message (``titles.TITLE_SOURCE_CHARS`` + 1 characters at most),
    None if the session has none."""

    @property
    def status(self) -> SessionStatus:
        """Derived as the session resource's is (``statuses.session_status``)."""
        return session_status(
            pending_count=self.pending_count, interrupted=self.interrupted, last_status=self.last_status
        )

    @property
    def title(self) -> str | None:
        """The first message, shortened (``titles.title_of``)."""
        return None if self.first_message_start is None else title_of(self.first_message_start)


@dataclass(frozen=True, slots=True)
class SessionPage:
    """A page of a user's sessions, most recent activity first, and the position to continue after."""

    items: list[SessionSummary] = field(default_factory=list)
    next_position: SessionPosition | None = None


@dataclass(frozen=True, slots=True)
class ImportedSession:
    """A session an import wrote, and how many items of each kind the document held."""

    session_id: str
    user_id: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: everything but its secret, of which only a SHA-256 is kept."""

    key_id: str
    secret_hash: str
    name: str | None
    role: str
    user_id: str | None
    created_at: datetime
    revoked_at: datetime | None = None
    callback_url: str | None = None
    """The completion webhook of messages posted with this key that name none themselves."""


@dataclass(frozen=True, slots=True)
class InterruptView:
    """One interrupt, pending or not, with who answered it and when (``GET /v1/interrupts/{id}``)."""

    interrupt: PendingInterrupt
    status: str
    answered_at: datetime | None = None
    answered_message_id: str | None = None
    answerer: Answerer | None = None
    """As the claim recorded it; None while nobody has answered."""


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """A message's completion webhook: one row of the outbox (``parley_webhook_deliveries``)."""

    delivery_id: str
    """The ``webhook-id`` header, the same on every attempt, so a receiver can drop repeats."""
    message_id: str
    session_id: str
    user_id: str
    url: str
    status: str
    """``pending`` (to be sent, or sent again), ``delivered`` or ``failed`` (given up)."""
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One try at sending a delivery, as it is kept."""

    attempt: int
    started_at: datetime
    duration_ms: float
    outcome: str
    """``delivered``, ``retry`` (to be tried again) or ``failed`` (not tried again)."""
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """A delivery with its attempts, oldest first (``GET /v1/messages/{id}/deliveries``)."""

    delivery: WebhookDelivery
    attempts: list[DeliveryAttempt] = field(default_factory=list)
