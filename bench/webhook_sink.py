"""A fast webhook receiver for bench/webhooks.py: a bare ASGI app under uvicorn, in a process of its own.

``POST`` anything: answered ``204`` at once, its arrival time (``time.time()``), ``webhook-id`` and the
message's ``updated_at`` (its terminal status's time) kept in memory. ``GET /stats`` returns them all;
``DELETE /stats`` forgets them. It verifies nothing: signatures are the tests' business
(tests/webhook_receiver.py), and a benchmark's sink should cost as little as it can.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]

_arrivals: list[tuple[str, float, str]] = []


async def _body(receive: Callable[[], Awaitable[Message]]) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(
    scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    if scope["type"] != "http":
        return
    body = await _body(receive)
    arrived = time.time()
    if scope["method"] == "POST":
        headers = dict(scope["headers"])
        ended = json.loads(body).get("updated_at", "")
        _arrivals.append((headers.get(b"webhook-id", b"").decode(), arrived, ended))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["method"] == "DELETE":
        _arrivals.clear()
    payload = json.dumps([list(a) for a in _arrivals]).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": payload})
