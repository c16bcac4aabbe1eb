"""The physical limit Parley is compared with: a minimal FastAPI endpoint that invokes the same graph
(the bundled assistant, its tools bound to the model) with the same checkpointer and durability, and
nothing else (no message rows, no ordering, no waiting, no token streaming, no usage).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from parley.bots.assistant import build_graph
from parley.core.context import GraphContext
from parley.core.turns import reply_of
from parley.models.scripted import ScriptedChatModel
from parley.settings import Settings
from parley.storage.checkpointer import sqlite_checkpointer
from parley.storage.sql_store import SqlStore
from parley.storage.sqlite_db import SqliteDatabase


class Turn(BaseModel):
    session_id: str
    message: str


def create_app() -> FastAPI:
    path = Path(os.environ["BASELINE_DB"])
    settings = Settings(data_dir=path.parent)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The store only serves the assistant's tools (bound to the model, as in Parley); no turn here
        # writes a message row.
        store = SqlStore(SqliteDatabase(path.with_name(path.stem + "-actions.sqlite")))
        await store.open()
        try:
            async with sqlite_checkpointer(path) as saver:
                ctx = GraphContext(model=ScriptedChatModel(), settings=settings, store=store)
                app.state.graph = build_graph(ctx).compile(checkpointer=saver)
                yield
        finally:
            await store.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/chat")
    async def chat(turn: Turn) -> dict[str, Any]:
        graph = app.state.graph
        config: Any = {"configurable": {"thread_id": turn.session_id}}
        message = HumanMessage(turn.message, id=os.urandom(8).hex())
        state = await graph.ainvoke({"messages": [message]}, config, durability=settings.durability)
        return {"reply": reply_of(state["messages"], message_id=str(message.id))}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
