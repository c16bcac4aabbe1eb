"""Apply a dialect's numbered ``NNNN_name.sql`` files, each once, in order, each in one transaction
with its version row, so that a crash mid-migration leaves the previous version intact.

Kept small on purpose: Parley's tables are few and plain SQL, and a migration framework would bring an
ORM we do not use. Each file is handed to the database whole — SQLite's ``executescript``, one
PostgreSQL simple-query ``execute`` — never split on ``;``, so trigger and function bodies work.
Several PostgreSQL instances starting at once take turns on an advisory lock.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from parley.core.timestamps import utc_now

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_TABLE = (
    "CREATE TABLE IF NOT EXISTS parley_schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)
# Any constant works; this one spells "parley" in ASCII.
_PG_LOCK_KEY = 0x7061726C6579


@dataclass(frozen=True)
class Migration:
    """One numbered SQL script."""

    version: int
    name: str
    sql: str


@cache
def migrations(dialect: str) -> tuple[Migration, ...]:
    """The dialect's migrations in version order (read once from the package)."""
    folder = resources.files("parley.storage.migrations").joinpath(dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{dialect} migrations are not numbered 1..n: {versions}")
    return tuple(found)


def latest_version(dialect: str) -> int:
    """The version a fully migrated database of this dialect has."""
    return len(migrations(dialect))


def apply_sqlite_migrations(conn: sqlite3.Connection) -> int:
    """Bring an autocommit-mode SQLite connection's schema up to date; return the version."""
    conn.execute(_TABLE)
    row = conn.execute("SELECT max(version) FROM parley_schema_migrations").fetchone()
    current = int(row[0] or 0)
    for migration in migrations("sqlite"):
        if migration.version <= current:
            continue
        # The version and name come from our own file names (checked by _NAME), never from input.
        script = (
            f"BEGIN IMMEDIATE;\n{migration.sql}\n;\n"
            "INSERT INTO parley_schema_migrations (version, name, applied_at) VALUES "
            f"({migration.version}, '{migration.name}', '{utc_now()}');\nCOMMIT;"
        )
        try:
            conn.executescript(script)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        current = migration.version
    return current


async def apply_postgres_migrations(conn: Any) -> int:
    """Bring a PostgreSQL database (a psycopg ``AsyncConnection`` in autocommit mode) up to date: the job
    queue's schema (procrastinate's own, applied once, when its tables are missing), then Parley's files.

    The advisory lock makes instances that start together apply each file once between them.
    """
    from procrastinate.schema import SchemaManager  # the queue is only needed on PostgreSQL

    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
        cursor = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present")
        present = await cursor.fetchone()
        if not (present["present"] if isinstance(present, dict) else present[0]):
            await conn.execute(SchemaManager.get_schema().encode())
        await conn.execute(_TABLE)
        cursor = await conn.execute("SELECT max(version) FROM parley_schema_migrations")
        row = await cursor.fetchone()
        current = int((row[0] if not isinstance(row, dict) else row["max"]) or 0)
        for migration in migrations("postgres"):
            if migration.version <= current:
                continue
            async with conn.transaction():  # a savepoint: each file whole or not at all
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    "INSERT INTO parley_schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, utc_now()),
                )
            current = migration.version
    return current
