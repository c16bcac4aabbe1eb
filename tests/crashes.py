"""A process dying at a chosen moment of a turn, in-process: the app's checkpointer raises a
``BaseException`` (not an ``Exception``, so no retry or failure handling sees it) when a chosen checkpoint is
about to be written, or has just been; then a new app on the same data plays the restarted process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from parley.api.app import create_app
from parley.settings import Settings
from tests.waiting import wait_until_async

ALICE = {"X-User-Id": "alice"}

CheckpointMatch = Callable[[dict[str, Any], dict[str, Any]], bool]
"""``(checkpoint, metadata)`` → whether the process dies at this checkpoint."""


class Crash(BaseException):
    """Stands for the process dying."""


async def crash_during_turn(
    settings: Settings, *, message: str, at: CheckpointMatch, after_saving: bool
) -> dict[str, Any]:
    """Send ``message`` to a fresh app and let the process 'die' at the first checkpoint ``at`` matches —
    before it is written, or ``after_saving`` it. Returns the accepted message, left ``running``."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        saver = app.state.services.checkpointer
        original = saver.aput

        async def dying(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
            if not after_saving and at(checkpoint, metadata):
                raise Crash
            saved = await original(config, checkpoint, metadata, versions)
            if after_saving and at(checkpoint, metadata):
                raise Crash
            return saved

        saver.aput = dying
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://parley"
        ) as client:
            accepted: dict[str, Any] = (
                await client.post("/v1/chat", json={"user_id": "alice", "message": message, "wait": 0})
            ).json()

            async def crashed() -> bool:
                return bool(app.state.services.runner.active_sessions == 0)

            await wait_until_async(crashed, what="the simulated crash")
            left = (await client.get(f"/v1/messages/{accepted['message_id']}", headers=ALICE)).json()
            assert left["status"] == "running"
    return accepted


@asynccontextmanager
async def restarted(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The process started again on the same data, and a client of it."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://parley") as client,
    ):
        yield client
