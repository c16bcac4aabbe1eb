"""What the export/import tests share: a second instance's settings, the rows of every table of an
instance (Parley's and the saver's), a document without its per-export fields."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from parley.settings import Settings
from parley.storage.transfer.document import Checksum

OPERATOR = {"X-User-Id": "op-1", "X-Role": "operator"}
PER_EXPORT = ("exported_at", "checksum")
"""The members that differ between two exports of one session (docs/api.md)."""


def settings_for(kind: str, data_dir: Path, database_url: str | None, **overrides: Any) -> Settings:
    """An instance of ``kind`` (sqlite, postgres) on its own data dir (or database)."""
    values: dict[str, Any] = {"data_dir": data_dir, "model": "scripted", "operator_header_enabled": True}
    if kind != "sqlite":
        assert database_url is not None
        values["database_url"] = database_url
    values.update(overrides)
    return Settings(**values)


def table_counts(settings: Settings) -> dict[str, int]:
    """Rows in every table of the instance: Parley's database and the checkpoint saver's."""
    counts: dict[str, int] = {}
    if settings.backend == "sqlite":
        for path in (settings.sqlite_path, settings.checkpoint_path):
            if not path.exists():
                continue
            conn = sqlite3.connect(path)
            try:
                names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                for name in names:
                    counts[f"{path.name}:{name}"] = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[
                        0
                    ]
            finally:
                conn.close()
        return counts
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            ).fetchall()
        ]
        for name in names:
            row = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            assert row is not None
            counts[name] = int(row[0])
    return counts


def content(document: bytes) -> dict[str, Any]:
    """The document's members but those that differ between exports."""
    parsed: dict[str, Any] = json.loads(document)
    return {k: v for k, v in parsed.items() if k not in PER_EXPORT}


def reseal(parsed: dict[str, Any]) -> bytes:
    """A document with its checksum made to match its (changed) content again: what a careful forger
    would do, so that the checks behind the checksum are what refuses it."""
    checksum = Checksum()
    for key, value in parsed.items():
        if key == "checksum":
            continue
        if isinstance(value, list):
            checksum.start(key)
            for item in value:
                checksum.item(item)
            checksum.end()
        else:
            checksum.member(key, value)
    parsed = {**parsed, "checksum": {"algorithm": "sha256", "value": checksum.hexdigest()}}
    return json.dumps(parsed).encode()
