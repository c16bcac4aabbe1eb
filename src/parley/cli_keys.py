"""``parley keys create|list|revoke``: API keys, managed on the data directly (the service may be running
or not), like ``parley export`` and ``parley import``.

On SQLite, with no service running, the command opens the data as any Parley process does (the lock file,
migrations); beside a running service it opens Parley's file without the lock (``SqliteDatabase(shared=
True)``: why that is safe is said there) for one short transaction. On PostgreSQL it runs beside anything.
A revocation reaches running services within ``PARLEY_KEY_CACHE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from parley.core.api_keys import KEY_ID_PATTERN, NewKey, check_key_fields, create_key, revoke_key
from parley.core.auth import CallerRole
from parley.core.errors import ConfigurationError, InvalidInput, ParleyError
from parley.core.records import ApiKey
from parley.core.timestamps import format_timestamp
from parley.settings import Settings
from parley.storage.db import Database
from parley.storage.postgres_db import PostgresDatabase
from parley.storage.sql_store import SqlStore
from parley.storage.sqlite_db import DataInUse, SqliteDatabase
from parley.webhooks.destinations import DestinationPolicy, RefusedDestination

T = TypeVar("T")
_USER_ID = re.compile(r"^[^\s\x00-\x1f]{1,200}$")
"""As the API's ``user_id`` (api/schemas.py): a key bound to a user the API could never name is useless."""


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[SqlStore]:
    db: Database
    if settings.backend == "postgres":
        assert settings.database_url is not None
        db = PostgresDatabase(settings.database_url, max_size=1)
        await db.open(migrate=settings.migrate_on_start)
    else:
        db = SqliteDatabase(settings.sqlite_path)
        try:
            await db.open(migrate=settings.migrate_on_start)
        except DataInUse:
            db = SqliteDatabase(settings.sqlite_path, shared=True)
            await db.open(migrate=False)
    store = SqlStore(db)
    try:
        if await db.schema_version() < await db.latest_version():
            raise ConfigurationError(
                f"{settings.storage_label} is not at this version's schema; run parley migrate"
            )
        yield store
    finally:
        await store.close()


async def _with_store(settings: Settings, work: Callable[[SqlStore], Awaitable[T]]) -> T:
    async with _store(settings) as store:
        return await work(store)


def _run(settings: Settings, verb: str, work: Callable[[SqlStore], Awaitable[T]]) -> T | int:
    """The result of ``work``, or the exit status after one line saying why it could not be done."""
    try:
        return asyncio.run(_with_store(settings, work))
    except ConfigurationError as exc:
        print(f"parley: cannot {verb}: {exc}", file=sys.stderr)
        return 2
    except (OSError, ParleyError) as exc:
        print(f"parley: cannot {verb}: {getattr(exc, 'detail', exc)}", file=sys.stderr)
        return 1


def create_command(
    settings: Settings,
    *,
    role: str,
    user_id: str | None,
    name: str | None,
    callback_url: str | None = None,
) -> int:
    """Make a key. Its description goes to stderr and the key alone to stdout, last, so that
    ``KEY=$(parley keys create …)`` captures it; it is shown this once and never stored."""
    if user_id is not None and not _USER_ID.match(user_id):
        print("parley: cannot create a key: --user must be 1-200 characters, no spaces", file=sys.stderr)
        return 2
    if name is not None and len(name) > 200:
        print("parley: cannot create a key: --name must be at most 200 characters", file=sys.stderr)
        return 2
    try:
        # Checked before storage is opened: a wrong combination never touches the data.
        check_key_fields(role=CallerRole(role), user_id=user_id, name=name)
    except InvalidInput as exc:
        print(f"parley: cannot create a key: {exc.detail}", file=sys.stderr)
        return 2
    if callback_url is not None:
        try:
            DestinationPolicy.parse(settings.webhook_allowed_hosts).check_url(callback_url)
        except RefusedDestination as exc:
            print(f"parley: cannot create a key: --callback-url {exc}", file=sys.stderr)
            return 2
    made = _run(
        settings,
        "create a key",
        lambda store: create_key(
            store=store, role=CallerRole(role), user_id=user_id, name=name, callback_url=callback_url
        ),
    )
    if not isinstance(made, NewKey):
        return made
    record = made.record
    bound = f", user {record.user_id}" if record.user_id else ""
    named = f", name {record.name!r}" if record.name else ""
    named += f", callback {record.callback_url}" if record.callback_url else ""
    print(
        f"parley: created key {record.key_id} (role {record.role}{bound}{named}); "
        "it is shown only now, on the next line:",
        file=sys.stderr,
        flush=True,
    )
    print(made.token, flush=True)
    return 0


def _row(key: ApiKey) -> list[str]:
    return [
        key.key_id,
        key.role,
        key.user_id or "-",
        key.name or "-",
        format_timestamp(key.created_at),
        "-" if key.revoked_at is None else format_timestamp(key.revoked_at),
        key.callback_url or "-",
    ]


def list_command(settings: Settings) -> int:
    """Every key, oldest first, as a table; never a secret (none is stored)."""
    keys = _run(settings, "list keys", lambda store: store.list_api_keys())
    if isinstance(keys, int):
        return keys
    table = [
        ["KEY_ID", "ROLE", "USER", "NAME", "CREATED", "REVOKED", "CALLBACK_URL"],
        *(_row(k) for k in keys),
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def revoke_command(settings: Settings, *, key_id: str) -> int:
    """Revoke a key: 0; 1 with a line saying so if there is no such key."""
    if not KEY_ID_PATTERN.match(key_id):
        print(
            f"parley: cannot revoke: there is no API key {key_id} (a key id is 12 hex digits)",
            file=sys.stderr,
        )
        return 1
    revoked = _run(settings, "revoke", lambda store: revoke_key(store=store, key_id=key_id))
    if isinstance(revoked, int):
        return revoked
    print(
        f"parley: revoked key {revoked.key_id} (running services refuse it within "
        f"{settings.key_cache_seconds:g} s, PARLEY_KEY_CACHE_SECONDS)",
        file=sys.stderr,
    )
    return 0
