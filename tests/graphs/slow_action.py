"""The bundled assistant, with a pause right after its first action commits: a test kills the server
there, between the action and the checkpoint of the step that ran it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from langgraph.graph import StateGraph

from parley.bots.assistant import AssistantState, build_graph
from parley.core.context import GraphContext


class _SlowAfterFirstAction:
    def __init__(self, store: Any, marker: Path) -> None:
        self._store = store
        self._marker = marker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def perform_once(self, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._store.perform_once(**kwargs)
        if not self._marker.exists():
            self._marker.write_text("acted")
            await asyncio.sleep(30)
        return result


def build(ctx: GraphContext) -> StateGraph[AssistantState, Any, Any, Any]:
    marker = Path(os.environ["SLOW_ACTION_MARKER"])
    return build_graph(
        GraphContext(model=ctx.model, settings=ctx.settings, store=_SlowAfterFirstAction(ctx.store, marker))
    )  # type: ignore[arg-type]
