"""Reading Server-Sent Events in tests, from the bytes on the wire (no client library in between): the
fields ``id``, ``event`` and ``data`` (JSON here), a blank line ending an event, ``:`` a comment."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

STREAM = {"Accept": "text/event-stream"}


@dataclass
class Event:
    id: int | None
    event: str
    data: Any


@dataclass
class Parser:
    """Feed it lines; it gives back whole events and counts comments (heartbeats)."""

    comments: list[str] = field(default_factory=list)
    _fields: dict[str, str] = field(default_factory=dict)

    def line(self, text: str) -> Event | None:
        if text == "":
            if not self._fields:
                return None
            fields, self._fields = self._fields, {}
            raw_id = fields.get("id")
            return Event(
                id=int(raw_id) if raw_id else None,
                event=fields.get("event", "message"),
                data=json.loads(fields["data"]) if "data" in fields else None,
            )
        if text.startswith(":"):
            self.comments.append(text)
            return None
        name, _, value = text.partition(":")
        value = value.removeprefix(" ")
        if name == "data" and "data" in self._fields:
            value = self._fields["data"] + "\n" + value
        self._fields[name] = value
        return None


def events_of(lines: Iterable[str], parser: Parser | None = None) -> Iterator[Event]:
    parser = parser or Parser()
    for text in lines:
        event = parser.line(text)
        if event is not None:
            yield event


async def aevents_of(response: httpx.Response, parser: Parser | None = None) -> AsyncIterator[Event]:
    parser = parser or Parser()
    async for text in response.aiter_lines():
        event = parser.line(text)
        if event is not None:
            yield event


def read_all(response: httpx.Response) -> list[Event]:
    """Every event of a stream, until the server ends it (after ``done``)."""
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    return list(events_of(response.iter_lines()))


def tokens(events: Iterable[Event]) -> str:
    return "".join(e.data["text"] for e in events if e.event == "token")
