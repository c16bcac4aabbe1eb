"""Event streams over HTTP: a message's events as Server-Sent Events (sse-starlette), for
``GET /v1/messages/{id}/events`` and for ``POST /v1/chat`` / ``POST …/resume`` sent with
``Accept: text/event-stream``. What is streamed, and why it has no gap and no repeat, is
``core/streams.py``; this module only puts it on the wire.

A client that disconnects ends its stream, never the turn: the turn runs in the runner, not in the
request. Heartbeat comments (``PARLEY_SSE_HEARTBEAT_SECONDS``) keep idle streams open through proxies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from parley.api.deps import Services
from parley.api.schemas import MessageOut
from parley.core.errors import ServiceUnavailable
from parley.core.events import CLOSE, MessageEvent
from parley.core.records import MessageRecord
from parley.core.streams import follow_message

EVENT_STREAM = "text/event-stream"
# How long a stopping server gives its streams to end on their own before they are cut.
_CLOSE_GRACE_SECONDS = 2.0

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        pattern=r"^[0-9]{1,18}$",
        description="The id of the last event received: the stream goes on after it.",
    ),
]

EVENT_KINDS = ("status", "token", "update", "interrupt", "error", "done")

STREAM_RESPONSE = {
    "description": "The message's events as Server-Sent Events (docs/api.md, 'Event streams'); the schema "
    "is one event's.",
    "content": {
        EVENT_STREAM: {
            "schema": {
                "type": "object",
                "required": ["id", "event", "data"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[0-9]+$"},
                    "event": {"type": "string", "enum": list(EVENT_KINDS)},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "description": "JSON: done holds the message resource (as GET /v1/messages/{id}).",
                    },
                },
            }
        }
    },
}


def wants_event_stream(request: Request) -> bool:
    """Whether the client asked for an event stream (``Accept: text/event-stream``)."""
    return any(
        part.split(";", 1)[0].strip().lower() == EVENT_STREAM
        for part in request.headers.get("accept", "").split(",")
    )


class StreamSlots:
    """How many event streams this process holds open, against ``PARLEY_SSE_MAX_STREAMS``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def take(self) -> None:
        if self.open >= self.limit:
            raise ServiceUnavailable(
                f"This instance holds {self.open} event streams, its limit; retry later or poll "
                "GET /v1/messages/{id}."
            )
        self.open += 1

    def give_back(self) -> None:
        self.open -= 1


def stream_slots(request: Request, services: Services) -> StreamSlots:
    slots: StreamSlots | None = getattr(request.app.state, "stream_slots", None)
    if slots is None:
        slots = StreamSlots(services.settings.sse_max_streams)
        request.app.state.stream_slots = slots
    return slots


def _encoded(event: MessageEvent, *, operator: bool) -> ServerSentEvent:
    if isinstance(event.data, MessageRecord):
        data = MessageOut.of(event.data, operator=operator).model_dump_json()
    else:
        data = json.dumps(event.data, separators=(",", ":"), default=str)
    return ServerSentEvent(data=data, event=event.kind, id=str(event.id))


def event_stream_response(
    request: Request,
    services: Services,
    *,
    message: MessageRecord,
    operator: bool,
    after: int = 0,
    headers: dict[str, str] | None = None,
) -> EventSourceResponse:
    """A ``200 text/event-stream`` of ``message``'s events after ``after``, ending with ``done``.

    ``ServiceUnavailable`` (503) when the instance already holds its limit of streams."""
    slots = stream_slots(request, services)
    slots.take()
    # Set by sse-starlette when the server is stopping: the stream then ends cleanly (a complete response,
    # which the client can resume elsewhere with Last-Event-ID) instead of being cut.
    stopping = anyio.Event()

    async def _close_on_stop() -> None:
        await stopping.wait()
        services.bus.deliver(message.message_id, MessageEvent(CLOSE))

    async def _events() -> AsyncIterator[ServerSentEvent]:
        watcher = asyncio.create_task(_close_on_stop())
        try:
            async for event in follow_message(
                store=services.store, bus=services.bus, message=message, operator=operator, after=after
            ):
                yield _encoded(event, operator=operator)
        finally:
            watcher.cancel()
            slots.give_back()

    return EventSourceResponse(
        _events(),
        ping=services.settings.sse_heartbeat_seconds,
        headers={"Cache-Control": "no-store", **(headers or {})},
        shutdown_event=stopping,
        shutdown_grace_period=_CLOSE_GRACE_SECONDS,
    )


def message_headers(record: MessageRecord) -> dict[str, str]:
    """Where to find the streamed message afterwards."""
    return {
        "Location": f"/v1/messages/{record.message_id}",
        "X-Message-Id": record.message_id,
        "X-Session-Id": record.session_id,
    }
