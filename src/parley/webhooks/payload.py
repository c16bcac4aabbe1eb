"""What a delivery carries: the message resource, exactly as ``GET /v1/messages/{id}`` shows it to the
message's own user (an operator's review stays hidden, as it would be from them)."""

from __future__ import annotations

from parley.api.schemas import MessageOut
from parley.core.records import MessageRecord


def message_payload(message: MessageRecord) -> bytes:
    """The body of the message's webhook: its resource as JSON, as the API serialises it."""
    return MessageOut.of(message, operator=False).model_dump_json().encode()
