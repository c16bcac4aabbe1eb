"""The per-caller rate limit of the ``/v1`` API (``PARLEY_RATE_LIMIT``).

Counted by the ``limits`` library's moving window — in this process's memory, or in Redis when several API
instances must share one count. A caller is its API key when keys are in use, otherwise its address (as
uvicorn reports it: behind a proxy, set uvicorn's ``FORWARDED_ALLOW_IPS`` so that it is the client's).
Should Redis be unreachable the request is let through and the fault logged: a limiter that fails closed
would turn a cache outage into a chat outage.
"""

from __future__ import annotations

import logging
import math
import time

from fastapi import Request
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from parley.api.auth import get_principal
from parley.core.errors import RateLimited, Unauthorized, first_line
from parley.settings import Settings

logger = logging.getLogger(__name__)

_WARN_EVERY_SECONDS = 60.0


class RateLimit:
    """The limits every caller is held to, and where their counts live."""

    def __init__(self, *, items: list[RateLimitItem], storage: Storage) -> None:
        self._items = items
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._warned_at = -math.inf

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimit | None:
        """The configured limit, or None when there is none."""
        if settings.rate_limit is None:
            return None
        url = settings.rate_limit_storage
        storage: Storage
        if url == "memory://":
            storage = MemoryStorage()
        else:
            # redis-py's asyncio client (the ``redis`` package), not the library's default coredis.
            storage = RedisStorage(f"async+{url}", implementation="redispy")
        return cls(items=parse_many(settings.rate_limit), storage=storage)

    async def hit(self, caller: str) -> None:
        """Count one request of ``caller``; ``RateLimited`` if it is one too many."""
        for item in self._items:
            try:
                allowed = await self._limiter.hit(item, caller)
            except Exception as exc:  # any storage fault: let the request through, and say so
                self._warn(exc)
                return
            if not allowed:
                raise RateLimited(
                    f"Too many requests: the limit is {item.amount} per {_window(item)}.",
                    retry_after=await self._retry_after(item, caller),
                )

    async def _retry_after(self, item: RateLimitItem, caller: str) -> int:
        try:
            stats = await self._limiter.get_window_stats(item, caller)
        except Exception:  # the refusal stands; only its hint is lost
            return int(item.get_expiry())
        return max(1, math.ceil(stats.reset_time - time.time()))

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_SECONDS:
            self._warned_at = now
            logger.warning("rate limit not enforced: its storage failed: %s", first_line(exc))

    async def close(self) -> None:
        """Release the Redis connections, if any. (``limits`` has no close of its own; its Redis bridge
        holds redis-py's client, which has.)"""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        aclose = getattr(client, "aclose", None)
        if aclose is not None:
            await aclose()


def _window(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"


def _address(request: Request) -> str:
    client = request.client
    return f"addr:{client.host if client else 'unknown'}"


async def enforce_rate_limit(request: Request) -> None:
    """A dependency of every ``/v1`` route, declared before the routers' own: count the request against
    its caller — its key, or its address with auth off — and refuse it past the limit.

    The principal is resolved here, first (``get_principal`` keeps it for the route). A request that fails
    to authenticate counts against its address: guessing keys, or sending a stream of bad ones that each
    cost a lookup, is held to the limit too."""
    limit: RateLimit | None = getattr(request.app.state, "rate_limit", None)
    if limit is None:
        return
    try:
        principal = await get_principal(request)
    except Unauthorized:
        await limit.hit(_address(request))
        raise
    await limit.hit(f"key:{principal.key_id}" if principal.key_id else _address(request))
