"""The ``parley_api_keys`` rows: one per key, holding a SHA-256 of its secret, never the secret."""

from __future__ import annotations

from datetime import datetime

from parley.core.records import ApiKey
from parley.core.timestamps import format_timestamp
from parley.storage.db import Row, Tx
from parley.storage.rows import parse_time

_COLUMNS = "key_id, secret_hash, name, role, user_id, created_at, revoked_at, callback_url"


def _key(row: Row) -> ApiKey:
    created = parse_time(row["created_at"])
    assert created is not None
    return ApiKey(
        key_id=row["key_id"],
        secret_hash=row["secret_hash"],
        name=row["name"],
        role=row["role"],
        user_id=row["user_id"],
        created_at=created,
        revoked_at=parse_time(row["revoked_at"]),
        callback_url=row["callback_url"],
    )


async def insert(tx: Tx, *, key: ApiKey) -> None:
    """Store a new key's row."""
    await tx.execute(
        f"INSERT INTO parley_api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
        (
            key.key_id,
            key.secret_hash,
            key.name,
            key.role,
            key.user_id,
            format_timestamp(key.created_at),
            key.callback_url,
        ),
    )


async def find(tx: Tx, *, key_id: str) -> ApiKey | None:
    """The key's row, revoked or not; None if there is none."""
    row = await tx.one(f"SELECT {_COLUMNS} FROM parley_api_keys WHERE key_id = ?", (key_id,))
    return None if row is None else _key(row)


async def all_keys(tx: Tx) -> list[ApiKey]:
    """Every key, oldest first."""
    return [
        _key(r) for r in await tx.all(f"SELECT {_COLUMNS} FROM parley_api_keys ORDER BY created_at, key_id")
    ]


async def revoke(tx: Tx, *, key_id: str, now: datetime) -> ApiKey | None:
    """Set ``revoked_at`` unless already set (the first revocation's time stays); the row, or None."""
    await tx.execute(
        "UPDATE parley_api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
        (format_timestamp(now), key_id),
    )
    return await find(tx, key_id=key_id)
