"""Storage from settings: the store of Parley's tables and LangGraph's checkpointer, for SQLite or
PostgreSQL as ``PARLEY_DATABASE_URL`` says."""

from __future__ import annotations

import sqlite3
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from psycopg_pool import PoolTimeout

from parley.core.errors import ConfigurationError, first_line
from parley.settings import Settings
from parley.storage.checkpointer import postgres_checkpointer, sqlite_checkpointer
from parley.storage.db import Database
from parley.storage.postgres_db import PostgresDatabase
from parley.storage.sql_store import SqlStore
from parley.storage.sqlite_db import SqliteDatabase


@dataclass(frozen=True)
class Storage:
    """What the rest of Parley gets from storage."""

    store: SqlStore
    checkpointer: BaseCheckpointSaver[Any]

    @property
    def db(self) -> Database:
        """The database of Parley's tables."""
        return self.store.db


def database(settings: Settings) -> Database:
    """The database settings name, not yet opened."""
    if settings.backend == "postgres":
        assert settings.database_url is not None
        return PostgresDatabase(settings.database_url, max_size=settings.database_pool_size)
    return SqliteDatabase(settings.sqlite_path)


async def open_storage(settings: Settings, stack: AsyncExitStack) -> Storage:
    """Open the store and the checkpointer (closed by ``stack``); migrate unless settings say not to.

    ``ConfigurationError`` with a line for the operator when storage cannot be used.
    """
    store = SqlStore(database(settings), default_graph=settings.graph_references()[0][0])
    where = settings.storage_label
    try:
        await store.db.open(migrate=settings.migrate_on_start)
    except (OSError, sqlite3.Error, psycopg.Error, PoolTimeout) as exc:
        await store.close()
        raise ConfigurationError(f"cannot open the database at {where}: {first_line(exc)}") from exc
    stack.push_async_callback(store.close)
    try:
        if settings.backend == "postgres":
            assert settings.database_url is not None
            checkpointer = await stack.enter_async_context(
                postgres_checkpointer(
                    settings.database_url,
                    max_size=settings.database_pool_size,
                    setup=settings.migrate_on_start,
                )
            )
        else:
            checkpointer = await stack.enter_async_context(sqlite_checkpointer(settings.checkpoint_path))
    except (OSError, sqlite3.Error, psycopg.Error, PoolTimeout) as exc:
        raise ConfigurationError(f"cannot open the checkpoints at {where}: {first_line(exc)}") from exc
    return Storage(store=store, checkpointer=checkpointer)
