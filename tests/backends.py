"""The storage backends the suites run against: SQLite files, and real PostgreSQL databases.

Each test on PostgreSQL gets a database of its own, cloned from a template migrated once per run
(``CREATE DATABASE … TEMPLATE`` takes tens of milliseconds), and dropped after it; the template goes
at the end of the run. Nothing is mocked: the tests talk to the server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

ADMIN_URL = os.environ.get("PARLEY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgres", "queue")
"""SQLite with the in-process runner; PostgreSQL with the in-process runner; PostgreSQL with the job
queue and a worker (``queue``)."""


def postgres_available() -> tuple[bool, str]:
    """Whether the test PostgreSQL answers, and why not."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return False, f"{ADMIN_URL}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"
    return True, ""


def _url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


class PostgresDatabases:
    """Databases made for this test run: a migrated template, and a clone of it per test."""

    def __init__(self) -> None:
        self._prefix = f"parley_t{os.getpid()}"
        self._template: str | None = None
        self._counter = itertools.count(1)

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(ADMIN_URL, autocommit=True)

    def template(self) -> str:
        """The template database, made and migrated on first use."""
        if self._template is None:
            name = f"{self._prefix}_template"
            with self._admin() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            asyncio.run(_migrate(_url(name)))
            self._template = name
        return self._template

    def create(self) -> str:
        """A fresh, migrated database; its URL."""
        template = self.template()
        name = f"{self._prefix}_{next(self._counter)}"
        with self._admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return _url(name)

    def create_empty(self) -> str:
        """A fresh database with nothing in it (not migrated); its URL."""
        name = f"{self._prefix}_{next(self._counter)}"
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return _url(name)

    def drop(self, url: str) -> None:
        """Drop a database this run made (open connections are closed by force)."""
        name = url.rpartition("/")[2]
        assert name.startswith(self._prefix)
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def drop_all(self) -> None:
        """Drop every database of this run, the template included."""
        with self._admin() as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (self._prefix + "\\_%",)
                )
            ]
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def _migrate(url: str) -> None:
    from parley.settings import Settings
    from parley.storage.factory import open_storage

    async with AsyncExitStack() as stack:
        await open_storage(Settings(database_url=url, model="scripted"), stack)


@dataclass(frozen=True)
class Backend:
    """One backend as a test sees it: the settings that select it, and plain SQL access to its rows."""

    name: str
    database_url: str | None
    data_dir: Path

    @property
    def queue(self) -> bool:
        """Whether turns run in a worker (``parley serve --runner queue`` + ``parley worker``)."""
        return self.name == "queue"

    def settings_values(self) -> dict[str, Any]:
        """The settings keyword arguments that select this backend."""
        values: dict[str, Any] = {"data_dir": self.data_dir}
        if self.database_url is not None:
            values["database_url"] = self.database_url
        if self.queue:
            values["runner"] = "queue"
        return values

    def env(self) -> dict[str, str]:
        """The same as environment variables, for a server subprocess."""
        env = {"PARLEY_DATABASE_URL": self.database_url} if self.database_url is not None else {}
        if self.queue:
            env["PARLEY_RUNNER"] = "queue"
        return env

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        if self.database_url is None:
            conn = sqlite3.connect(self.data_dir / "parley.sqlite", timeout=30)
            conn.row_factory = sqlite3.Row
            try:
                yield conn
            finally:
                conn.close()
        else:
            with psycopg.connect(self.database_url, autocommit=True, row_factory=dict_row) as conn:
                yield conn

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a query written with ``?`` placeholders, as dicts (both dialects)."""
        text = statement if self.database_url is None else statement.replace("?", "%s")
        with self._connect() as conn:
            return [dict(r) for r in conn.execute(text, params).fetchall()]

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        """Run a statement written with ``?`` placeholders (both dialects), committed."""
        text = statement if self.database_url is None else statement.replace("?", "%s")
        with self._connect() as conn:
            conn.execute(text, params)
            if self.database_url is None:
                conn.commit()

    def count(self, table: str, where: str = "", params: tuple[Any, ...] = ()) -> int:
        """How many rows ``table`` has (that match ``where``); 0 if the table does not exist yet."""
        try:
            rows = self.query(
                f"SELECT count(*) AS n FROM {table}" + (f" WHERE {where}" if where else ""), params
            )
        except (sqlite3.OperationalError, psycopg.errors.UndefinedTable):
            return 0
        return int(rows[0]["n"])
