"""API keys: their form, how they are made and checked, and the short-lived cache that spares storage a
round trip on every request.

A key is ``parley_<key id>_<secret>``: the id finds the row, the secret proves the caller holds the key.
Only a SHA-256 of the secret is stored. A slow password hash (bcrypt, argon2) exists to make guessing a
*low-entropy* password expensive; a secret of 32 random bytes cannot be guessed however fast the hash,
so a slow one would buy nothing and cost every request its price.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from parley.core.auth import CallerRole, Principal
from parley.core.errors import InvalidInput, InvalidToken, NotFound
from parley.core.records import ApiKey

PREFIX = "parley"
SECRET_BYTES = 32
KEY_ID_PATTERN = re.compile(r"^[0-9a-f]{12}$")
_TOKEN = re.compile(r"^parley_([0-9a-f]{12})_([A-Za-z0-9_-]{43,})$")
CACHE_LIMIT = 10_000
"""Resolved keys one process keeps at most (far more than any deployment has): a bound on memory."""


class KeyStore(Protocol):
    """What key management needs from storage (``Store`` has these)."""

    async def create_api_key(self, *, key: ApiKey) -> None:
        """Store a new key's row."""

    async def find_api_key(self, *, key_id: str) -> ApiKey | None:
        """The key's row, revoked or not; None if there is none."""

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key, oldest first, revoked ones included."""

    async def revoke_api_key(self, *, key_id: str, now: datetime) -> ApiKey | None:
        """Mark the key revoked (once; a second revoke keeps the first time); None if unknown."""


def hash_secret(secret: str) -> str:
    """The stored form of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: its row, and the key itself, shown once and never stored."""

    record: ApiKey
    token: str


def check_key_fields(*, role: CallerRole, user_id: str | None, name: str | None) -> None:
    """``InvalidInput`` unless a ``user`` key names its user and no other role does: a user key acts for
    exactly one user, the others for whomever they name (or nobody)."""
    if role is CallerRole.USER and not user_id:
        raise InvalidInput("a user key needs the user it acts for (--user)", loc=["user"])
    if role is not CallerRole.USER and user_id is not None:
        raise InvalidInput(
            f"only a user key is bound to a user; a {role.value} key takes no --user", loc=["user"]
        )
    if name is not None and not name.strip():
        raise InvalidInput("a name must not be blank", loc=["name"])


def new_key(
    *,
    role: CallerRole,
    user_id: str | None,
    name: str | None,
    now: datetime,
    callback_url: str | None = None,
) -> NewKey:
    """Make a key (not yet stored); ``check_key_fields`` first (and the callback URL against the webhook
    policy: the caller's)."""
    check_key_fields(role=role, user_id=user_id, name=name)
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    record = ApiKey(
        key_id=key_id,
        secret_hash=hash_secret(secret),
        name=name,
        role=role.value,
        user_id=user_id,
        created_at=now,
        callback_url=callback_url,
    )
    return NewKey(record=record, token=f"{PREFIX}_{key_id}_{secret}")


async def create_key(
    *,
    store: KeyStore,
    role: CallerRole,
    user_id: str | None,
    name: str | None,
    callback_url: str | None = None,
) -> NewKey:
    """Make a key and store its row; the token is the caller's to show, once."""
    made = new_key(role=role, user_id=user_id, name=name, now=datetime.now(UTC), callback_url=callback_url)
    await store.create_api_key(key=made.record)
    return made


async def revoke_key(*, store: KeyStore, key_id: str) -> ApiKey:
    """Revoke a key; ``NotFound`` if there is no such key."""
    revoked = await store.revoke_api_key(key_id=key_id, now=datetime.now(UTC))
    if revoked is None:
        raise NotFound(f"There is no API key {key_id}.")
    return revoked


def parse_token(token: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a token of the key form, or None."""
    match = _TOKEN.match(token)
    return None if match is None else (match.group(1), match.group(2))


def principal_of(key: ApiKey) -> Principal:
    """The principal a (valid, unrevoked) key makes of its caller."""
    return Principal(
        role=CallerRole(key.role),
        authenticated=True,
        key_id=key.key_id,
        key_name=key.name,
        user_id=key.user_id,
        callback_url=key.callback_url,
    )


class KeyResolver:
    """Bearer token → ``Principal``, with resolved keys cached in this process for ``ttl_seconds``.

    Without the cache every request would cost a query before its own. The price is that a revocation
    (made by ``parley keys revoke``, i.e. by another process) takes effect here within the TTL; 0 turns
    the cache off. Only keys found are cached — a revoked one as revoked — so that a stream of made-up
    key ids cannot fill memory; the cache is bounded besides.
    """

    def __init__(
        self, *, store: KeyStore, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, ApiKey]] = {}

    async def resolve(self, token: str) -> Principal:
        """The principal of ``token``; ``InvalidToken`` for anything but a valid, unrevoked key."""
        parsed = parse_token(token)
        if parsed is None:
            raise InvalidToken("The bearer token is not a valid API key.")
        key_id, secret = parsed
        key = await self._lookup(key_id)
        # Compared in constant time, so the response time says nothing of how much of a hash matched.
        if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
            raise InvalidToken("The bearer token is not a valid API key.")
        if key.revoked_at is not None:
            raise InvalidToken("The API key has been revoked.")
        return principal_of(key)

    async def _lookup(self, key_id: str) -> ApiKey | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        key = await self._store.find_api_key(key_id=key_id)
        if key is not None and self._ttl > 0:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[key_id] = (now + self._ttl, key)
        return key
