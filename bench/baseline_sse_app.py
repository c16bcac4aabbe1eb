"""The physical limit Parley's event streams are compared with: a bare sse-starlette app, run by uvicorn as
a real process, that streams the scripted model's clock tokens (``[[clock:N]]``: each the wall-clock time
it was emitted) at the same pace, with nothing of Parley in between — no model, graph, callbacks, event
journal, storage or bus. What it measures is uvicorn, sse-starlette, the loopback socket and the client.

``GET /stream?tokens=N&pace=S``: ``N`` ``token`` events one ``S`` seconds apart (``data`` as Parley's:
``{"text": "<time> ", "node": "agent"}``), then ``done``. ``GET /idle``: a stream that only sends
heartbeats until the client goes. Heartbeats as Parley's default (15 s).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import FastAPI, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from parley.models.scripted import clock_token

HEARTBEAT_SECONDS = 15.0


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/stream")
    async def stream(
        tokens: int = Query(ge=1, le=100_000), pace: float = Query(ge=0, le=10)
    ) -> EventSourceResponse:
        async def events() -> AsyncIterator[ServerSentEvent]:
            for index in range(1, tokens + 1):
                if pace:
                    await asyncio.sleep(pace)
                data = json.dumps({"text": clock_token(), "node": "agent"}, separators=(",", ":"))
                yield ServerSentEvent(data=data, event="token", id=str(index))
            yield ServerSentEvent(data='{"status":"completed"}', event="done", id=str(tokens + 1))

        return EventSourceResponse(events(), ping=HEARTBEAT_SECONDS)

    @app.get("/idle")
    async def idle() -> EventSourceResponse:
        async def events() -> AsyncIterator[ServerSentEvent]:
            await asyncio.Event().wait()  # until the client disconnects (the response cancels this)
            yield ServerSentEvent(data="{}", event="done")

        return EventSourceResponse(events(), ping=HEARTBEAT_SECONDS)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
