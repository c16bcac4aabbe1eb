"""Request and response bodies of the public API (v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, field_validator

from parley.core.history import CHECKPOINT_ID_PATTERN
from parley.core.records import (
    CheckpointEntry,
    DeliveryAttempt,
    DeliveryView,
    InterruptView,
    MessageRecord,
    PendingInterrupt,
    SessionRecord,
    SessionSummary,
    TranscriptEntry,
)
from parley.core.redaction import interrupt_for_viewer, interrupts_for_viewer
from parley.core.statuses import MessageKind, MessageStatus, SessionStatus
from parley.core.timestamps import format_timestamp
from parley.settings import GRAPH_NAME
from parley.webhooks.destinations import MAX_URL_CHARS

Timestamp = Annotated[
    datetime,
    # One fixed form (UTC, microseconds, Z) instead of pydantic's, which drops a zero fraction.
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-11-25T18:26:14.290986Z"]}),
]

ID_PATTERN = r"^[^\x00-\x1f]+$"
"""Identifiers in paths, queries and bodies: no control characters (PostgreSQL's text cannot hold NUL)."""

UserId = Field(
    default=None,
    min_length=1,
    max_length=200,
    pattern=r"^[^\s\x00-\x1f]+$",
    description="The end user's id, as the caller's own system knows it. Required with auth off and for "
    "service and admin keys; a user key's own user if omitted (another user's is 403).",
)
"""Optional in the model, because a user key needs none; the routes require it of the callers that must
name their user (``deps.acting_user_id``), and the OpenAPI document says which (``api/openapi.py``)."""


CallbackUrl = Field(
    default=None,
    min_length=1,
    max_length=MAX_URL_CHARS,
    json_schema_extra={"format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
    description="Where to POST the message resource, signed (Standard Webhooks), once the message "
    "ends: an http(s) URL on a host PARLEY_WEBHOOK_ALLOWED_HOSTS allows. Default: the API key's.",
)
"""``callback_url`` of a chat message and of a resume."""


class ChatRequest(BaseModel):
    """``POST /v1/chat``. Unknown fields are refused rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: str | None = UserId
    session_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=ID_PATTERN,
        description="Omit to start a new session; its id comes back in the response.",
    )
    message: str = Field(
        min_length=1,
        # The schema's counterpart of _not_blank (its maxLength is PARLEY_MAX_MESSAGE_CHARS: api/openapi.py).
        json_schema_extra={"pattern": r"^[^\u0000]*[^\s\u0000][^\u0000]*$"},
        description="The user's message: at least one character that is not whitespace, and no NUL "
        "character (which no storage backend keeps as text).",
    )
    wait: float | None = Field(
        default=None,
        ge=0,
        description="Seconds to wait for the reply before answering 202; default from settings.",
    )
    callback_url: str | None = CallbackUrl
    graph: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        pattern=f"^{GRAPH_NAME.pattern}$",
        description="Which graph a new session talks to (GET /v1/graphs lists them); default: the first. "
        "A session stays with its graph: naming another for an existing session is 409 graph-mismatch.",
    )

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain more than whitespace")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class ResumeRequest(BaseModel):
    """``POST /v1/sessions/{id}/resume``: the answer to one pending interrupt."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: str | None = UserId
    interrupt_id: str = Field(
        min_length=1,
        max_length=200,
        pattern=ID_PATTERN,
        description="One of the session's pending interrupts.",
    )
    value: Any = Field(description="The answer, as the graph's interrupt expects it (any JSON).")
    wait: float | None = Field(
        default=None,
        ge=0,
        description="Seconds to wait for the turn before answering 202; default from settings.",
    )
    callback_url: str | None = CallbackUrl


class _InterruptFields(BaseModel):
    """What every view of an interrupt shows."""

    interrupt_id: str
    session_id: str
    message_id: str
    user_id: str
    kind: str
    value: Any
    created_at: Timestamp


class InterruptOut(_InterruptFields):
    """A pending interrupt in the operator queue."""

    age_seconds: float
    graph: str = Field(description="The graph of the interrupt's session.")

    @classmethod
    def of(cls, record: PendingInterrupt, *, now: datetime) -> InterruptOut:
        return cls(
            **_interrupt_fields(record, value=record.value),
            age_seconds=round((now - record.created_at).total_seconds(), 3),
            graph=record.graph or "",
        )


class AnsweredBy(BaseModel):
    """Who answered an interrupt: the key it was answered with, or (auth off) the user id claimed."""

    authenticated: bool = Field(description="false: with PARLEY_AUTH=off, nobody was authenticated.")
    role: str
    key_id: str | None
    key_name: str | None
    user_id: str | None = Field(description="The user the answer was given for, if any.")
    message_id: str | None = Field(description="The resume message that carried the answer.")


class InterruptDetail(_InterruptFields):
    """``GET /v1/interrupts/{id}``: one interrupt, pending or not, with who answered it and when."""

    status: str = Field(description="pending, answered or superseded.")
    answered_at: Timestamp | None
    answered_by: AnsweredBy | None

    @classmethod
    def of(cls, view: InterruptView, *, operator: bool) -> InterruptDetail:
        record = view.interrupt
        shown = interrupt_for_viewer(record.as_api(), operator=operator)
        who = view.answerer
        answered = None
        if who is not None:
            answered = AnsweredBy(
                authenticated=who.via == "key",
                role=who.role,
                key_id=who.key_id,
                key_name=who.key_name,
                user_id=who.user_id,
                message_id=view.answered_message_id,
            )
        return cls(
            **_interrupt_fields(record, value=shown.get("value")),
            status=view.status,
            answered_at=view.answered_at,
            answered_by=answered,
        )


def _interrupt_fields(record: PendingInterrupt, *, value: Any) -> dict[str, Any]:
    return {
        "interrupt_id": record.interrupt_id,
        "session_id": record.session_id,
        "message_id": record.message_id,
        "user_id": record.user_id,
        "kind": record.kind,
        "value": value,
        "created_at": record.created_at,
    }


class InterruptsOut(BaseModel):
    """The operator queue: pending interrupts across sessions, oldest first."""

    items: list[InterruptOut]


class MessageOut(BaseModel):
    """The message resource."""

    message_id: str
    session_id: str
    kind: MessageKind
    status: MessageStatus
    reply: str | None
    interrupt: list[dict[str, Any]] | None
    error: dict[str, Any] | None
    created_at: Timestamp
    updated_at: Timestamp
    attempts: int
    usage: dict[str, Any] | None = Field(
        default=None,
        description="The turn's model calls: model_calls, model_errors, input_tokens, output_tokens, "
        "model_seconds, first_token_seconds.",
    )

    @classmethod
    def of(cls, record: MessageRecord, *, operator: bool) -> MessageOut:
        """The resource as its reader may see it: an operator's review is hidden from the end user
        (``core.redaction``); ``operator`` has no default so that no route can forget to decide."""
        return cls(
            message_id=record.message_id,
            session_id=record.session_id,
            kind=record.kind,
            status=record.status,
            reply=record.reply,
            interrupt=interrupts_for_viewer(record.interrupt, operator=operator),
            error=record.error,
            created_at=record.created_at,
            updated_at=record.updated_at,
            attempts=record.attempts,
            usage=record.usage,
        )


class DeliveryAttemptOut(BaseModel):
    """One try at sending a webhook."""

    attempt: int = Field(description="1 for the first try.")
    started_at: Timestamp
    duration_ms: float
    outcome: str = Field(description="delivered, retry (tried again later) or failed (not tried again).")
    status_code: int | None = Field(description="The receiver's HTTP status; null when it gave none.")
    error: str | None = Field(description="What went wrong: the status, a timeout, a refused connection…")
    response_excerpt: str | None = Field(description="The start of the receiver's response body.")

    @classmethod
    def of(cls, attempt: DeliveryAttempt) -> DeliveryAttemptOut:
        return cls(
            attempt=attempt.attempt,
            started_at=attempt.started_at,
            duration_ms=attempt.duration_ms,
            outcome=attempt.outcome,
            status_code=attempt.status_code,
            error=attempt.error,
            response_excerpt=attempt.response_excerpt,
        )


class DeliveryOut(BaseModel):
    """A message's completion webhook and every attempt at sending it."""

    webhook_id: str = Field(description="The webhook-id header: the same on every attempt.")
    url: str
    status: str = Field(description="pending (to be sent, or sent again), delivered or failed.")
    next_attempt_at: Timestamp | None = Field(description="When it is next tried (pending only).")
    created_at: Timestamp = Field(description="When the message ended and the delivery was recorded.")
    finished_at: Timestamp | None = Field(description="When it was delivered or given up.")
    last_error: str | None
    attempts: list[DeliveryAttemptOut]

    @classmethod
    def of(cls, view: DeliveryView) -> DeliveryOut:
        delivery = view.delivery
        return cls(
            webhook_id=delivery.delivery_id,
            url=delivery.url,
            status=delivery.status,
            next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
            created_at=delivery.created_at,
            finished_at=delivery.finished_at,
            last_error=delivery.last_error,
            attempts=[DeliveryAttemptOut.of(a) for a in view.attempts],
        )


class DeliveriesOut(BaseModel):
    """A message's webhook deliveries (one for a message posted with a callback_url, else none)."""

    items: list[DeliveryOut]


class SessionOut(BaseModel):
    """The session resource."""

    session_id: str
    user_id: str
    graph: str = Field(description="The graph the session was created with, which runs all its turns.")
    status: SessionStatus
    pending_interrupts: list[dict[str, Any]]
    message_count: int
    pending_count: int
    last_message_id: str | None
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, record: SessionRecord, *, operator: bool) -> SessionOut:
        """The resource as its reader may see it (see ``MessageOut.of``)."""
        return cls(
            session_id=record.session_id,
            user_id=record.user_id,
            graph=record.graph,
            status=record.status,
            pending_interrupts=[
                interrupt_for_viewer(i, operator=operator) for i in record.pending_interrupts
            ],
            message_count=record.message_count,
            pending_count=record.pending_count,
            last_message_id=record.last_message.message_id if record.last_message else None,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class SessionListItem(BaseModel):
    """A session in its user's list."""

    session_id: str
    status: SessionStatus = Field(description="Derived as the session resource's is.")
    title: str | None = Field(
        description="The session's first message: whitespace collapsed, at most 60 characters, ending "
        "with … when cut. Null for a session without one."
    )
    message_count: int
    pending_count: int
    created_at: Timestamp
    last_activity_at: Timestamp = Field(
        description="When a message was last accepted, ended, or cancelled before it ran."
    )

    @classmethod
    def of(cls, summary: SessionSummary) -> SessionListItem:
        return cls(
            session_id=summary.session_id,
            status=summary.status,
            title=summary.title,
            message_count=summary.message_count,
            pending_count=summary.pending_count,
            created_at=summary.created_at,
            last_activity_at=summary.last_activity_at,
        )


class SessionsOut(BaseModel):
    """A page of a user's sessions, most recent activity first; pass ``next_cursor`` back as ``cursor``."""

    items: list[SessionListItem]
    next_cursor: str | None


class TranscriptItem(BaseModel):
    """One line of the transcript."""

    message_id: str
    role: str
    content: str
    created_at: Timestamp
    on_branch: bool = Field(
        description="Whether the line is on the session's current branch: false once a rewind went back "
        "to before it (the graph no longer remembers it; later messages fork from the rewind's target)."
    )
    rewound_at: Timestamp | None = Field(
        description="When a rewind took the line off the branch (null: on it)."
    )
    rewound_by: str | None = Field(description="The message id of that rewind (null: on the branch).")

    @classmethod
    def of(cls, entry: TranscriptEntry) -> TranscriptItem:
        return cls(
            message_id=entry.message_id,
            role=entry.role,
            content=entry.content,
            created_at=entry.created_at,
            on_branch=entry.rewound_at is None,
            rewound_at=entry.rewound_at,
            rewound_by=entry.rewound_by,
        )


class TranscriptOut(BaseModel):
    """A page of the transcript, oldest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[TranscriptItem]
    next_cursor: str | None


class ImportOut(BaseModel):
    """The session an import created, and how many items of each kind its document held."""

    session_id: str
    user_id: str
    counts: dict[str, int]


class RewindRequest(BaseModel):
    """``POST /v1/sessions/{id}/rewind``: continue the session from one of its checkpoints."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: str | None = UserId
    checkpoint_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=CHECKPOINT_ID_PATTERN,
        description="A checkpoint of the session, as GET /v1/sessions/{id}/history lists them.",
    )
    wait: float | None = Field(
        default=None,
        ge=0,
        description="Seconds to wait for the rewind before answering 202; default from settings.",
    )


class CheckpointItem(BaseModel):
    """One checkpoint of the session's graph state."""

    checkpoint_id: str
    parent_checkpoint_id: str | None = Field(description="The checkpoint it continues from.")
    step: int | None = Field(description="LangGraph's step number (-1: the first input).")
    source: str | None = Field(description="LangGraph's source: input, loop, update or fork.")
    node: str | None = Field(
        description="Who wrote it: the node(s) whose step ended there (comma-separated when several), "
        "__input__ (a run's input arrived), __rewind__ (a rewind's copy of its target), __rollback__ (a "
        "failed or cancelled turn undone), __update__ (another state update); null if unknown."
    )
    message_id: str | None = Field(description="The message whose turn, rewind or rollback wrote it.")
    created_at: Timestamp

    @classmethod
    def of(cls, entry: CheckpointEntry) -> CheckpointItem:
        return cls(
            checkpoint_id=entry.checkpoint_id,
            parent_checkpoint_id=entry.parent_checkpoint_id,
            step=entry.step,
            source=entry.source,
            node=entry.node,
            message_id=entry.message_id,
            created_at=entry.created_at,
        )


class HistoryOut(BaseModel):
    """A page of the session's checkpoints, newest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[CheckpointItem]
    next_cursor: str | None


class ProblemError(BaseModel):
    """One field at fault, in a ``422`` (or a ``415`` naming the Content-Type)."""

    loc: list[str | int] = Field(description="Where: the part of the request, then the field's path.")
    field: str = Field(description="``loc`` joined with dots: ``body.message``, ``header.X-User-Id``.")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``), as every error is reported. Some problems
    carry more members (a busy session's ``message_id``, a resume conflict's ``pending``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI reference naming the problem, e.g. ``/problems/not-found``.")
    title: str
    status: int
    detail: str | None = None
    errors: list[ProblemError] | None = None


class Health(BaseModel):
    """Liveness and readiness answers."""

    status: str


class GraphOut(BaseModel):
    """One graph this service hosts (``GET /v1/graphs``)."""

    name: str = Field(description="What `graph` in POST /v1/chat names.")
    default: bool = Field(description="Whether a new session gets this graph when the request names none.")
    kind: Literal["graph", "functional"] = Field(
        description="graph: a StateGraph (or compiled graph); functional: a Functional API @entrypoint."
    )
    input: Literal["messages", "mapped"] = Field(
        description="messages: the user's text arrives as a HumanMessage in `messages`; mapped: through "
        "the mapping its author gave (parley.hosting.host)."
    )
    interrupts: list[str] | None = Field(
        description="The interrupt kinds the graph declares it may raise (confirm, input, review), plus "
        "breakpoint where PARLEY_INTERRUPT_BEFORE/AFTER names its nodes; null: not declared."
    )
    description: str


class GraphsOut(BaseModel):
    """``GET /v1/graphs``: the graphs this service hosts, the default first."""

    items: list[GraphOut]
