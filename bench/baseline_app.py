"""The physical limit Parley is compared with: a minimal FastAPI endpoint that invokes the same graph
(the bundled assistant, its tools bound to the model) with the same checkpointer and durability, and
nothing else (no message rows, no ordering, no waiting, no token streaming, no usage).

Storage: ``BASELINE_DB`` names a SQLite file (LangGraph's ``AsyncSqliteSaver``, as Parley's default);
``BASELINE_DATABASE_URL`` a PostgreSQL database (LangGraph's ``AsyncPostgresSaver`` on a connection pool,
built by the very function Parley uses, so its lock is replaced the same way).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import BaseModel

from parley.bots.assistant import build_graph
from parley.core.context import GraphContext
from parley.core.programs import reply_of
from parley.models.scripted import ScriptedChatModel
from parley.settings import Settings
from parley.storage.checkpointer import postgres_checkpointer, sqlite_checkpointer
from parley.storage.db import Database
from parley.storage.postgres_db import PostgresDatabase
from parley.storage.sql_store import SqlStore
from parley.storage.sqlite_db import SqliteDatabase


def storage(
    where: Path | str | None = None, *, pool_size: int | None = None
) -> tuple[Settings, Database, AbstractAsyncContextManager[BaseCheckpointSaver[Any]]]:
    """Settings, the database of the assistant's tools and the checkpointer: on a SQLite file (a path) or
    a PostgreSQL database (a URL, with pools of ``pool_size`` connections); by default, as the
    environment says."""
    if where is None:
        where = os.environ.get("BASELINE_DATABASE_URL") or Path(os.environ["BASELINE_DB"])
    if isinstance(where, str):
        size = pool_size or int(os.environ.get("BASELINE_POOL_SIZE", "10"))
        return (
            Settings(database_url=where),
            PostgresDatabase(where, max_size=size),
            postgres_checkpointer(where, max_size=size),
        )
    return (
        Settings(data_dir=where.parent),
        SqliteDatabase(where.with_name(where.stem + "-actions.sqlite")),
        sqlite_checkpointer(where),
    )


class Turn(BaseModel):
    session_id: str
    message: str


def create_app() -> FastAPI:
    settings, db, checkpointer = storage()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The store only serves the assistant's tools (bound to the model, as in Parley); no turn here
        # writes a message row.
        store = SqlStore(db)
        await store.open()
        try:
            async with checkpointer as saver:
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
