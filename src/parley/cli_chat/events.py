"""One event of a message's stream, as the client reads it (see docs/api.md, "Streaming")."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from httpx_sse import ServerSentEvent

TERMINAL_STATUSES = frozenset({"completed", "interrupted", "failed", "cancelled"})
"""The message statuses after which a message changes no more (the server's, as the API documents them)."""


@dataclass(frozen=True)
class TurnEvent:
    """``kind`` is the SSE ``event`` field (``status``, ``token``, ``update``, ``interrupt``, ``error``,
    ``done``); ``data`` its JSON object; ``id`` its decimal id, what ``Last-Event-ID`` resumes after."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    @classmethod
    def of(cls, sse: ServerSentEvent) -> TurnEvent:
        """Read a decoded SSE event. Data that is not a JSON object is kept under ``"value"`` rather than
        refused: an event the client does not understand must not end the conversation."""
        try:
            data: Any = json.loads(sse.data) if sse.data else {}
        except json.JSONDecodeError:
            data = {"value": sse.data}
        if not isinstance(data, dict):
            data = {"value": data}
        event_id = int(sse.id) if sse.id and sse.id.isdecimal() else None
        return cls(kind=sse.event or "message", data=data, id=event_id)

    @property
    def text(self) -> str:
        """A token's text ('' for other events)."""
        value = self.data.get("text")
        return value if isinstance(value, str) else ""

    @property
    def attempt(self) -> int:
        """A status event's attempt (1 when absent)."""
        value = self.data.get("attempt")
        return value if isinstance(value, int) else 1
