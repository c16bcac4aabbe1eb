"""Apply the numbered ``NNNN_name.sql`` files of a dialect, each once, in order.

Kept to a few lines on purpose: Parley's tables are few and plain SQL; a migration framework would
bring an ORM we do not use. Each file runs in one transaction with its version row, so a crash
mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from importlib import resources

from parley.core.timestamps import utc_now

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


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
    conn.execute(
        "CREATE TABLE IF NOT EXISTS parley_schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    row = conn.execute("SELECT max(version) FROM parley_schema_migrations").fetchone()
    current = int(row[0] or 0)
    for migration in migrations("sqlite"):
        if migration.version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript would COMMIT the open transaction first; run statement by statement.
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO parley_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utc_now()),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        current = migration.version
    return current


def _statements(sql: str) -> list[str]:
    without_comments = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in without_comments.split(";") if s.strip()]
