"""The benchmark's side of an event stream: read the bytes as they arrive and, for each ``token`` event
whose text is a clock token (the scripted model's ``[[clock:N]]``: the wall-clock time it was emitted),
how long it took to get here.

The arrival time is taken as soon as a chunk of bytes is handed over, before it is parsed: what is
measured is the server and the socket, not this parser. Server and client share the machine, so they
share the clock. A minimal parser rather than tests/sse.py's, because with thousands of events a second
the client's own work would show in the figures: fields ``event`` and ``data``, events ended by a blank
line, ``:`` heartbeats ignored (sse-starlette ends its lines with CRLF).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

STREAM = {"Accept": "text/event-stream"}


@dataclass
class StreamResult:
    """What one stream brought: ``(emitted, received)`` per clock token, events by kind, the last event's
    data (a ``done``'s: the message)."""

    tokens: list[tuple[float, float]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    last: tuple[str, str] | None = None

    @property
    def delays(self) -> list[float]:
        return [received - emitted for emitted, received in self.tokens]


async def read_events(response: httpx.Response, result: StreamResult | None = None) -> StreamResult:
    """Read ``response`` (an open ``text/event-stream``) to its end into ``result``."""
    if response.status_code != 200:
        await response.aread()
        raise AssertionError(f"stream answered {response.status_code}: {response.text}")
    result = result if result is not None else StreamResult()
    buffer = b""
    async for chunk in response.aiter_raw():
        received = time.time()
        buffer = (buffer + chunk).replace(b"\r\n", b"\n")
        *blocks, buffer = buffer.split(b"\n\n")
        for block in blocks:
            _event(block, received, result)
    return result


def _event(block: bytes, received: float, result: StreamResult) -> None:
    kind, data = "message", ""
    for line in block.decode().split("\n"):
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].removeprefix(" ")
    if not data and kind == "message":
        return  # heartbeat comments only
    result.kinds[kind] += 1
    result.last = (kind, data)
    if kind == "token":
        text = json.loads(data)["text"]
        result.tokens.append((float(text), received))
