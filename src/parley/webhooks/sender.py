"""One HTTP attempt at a delivery: check the destination again, post the signed body, say what came of it.

The connection goes only to addresses the policy checked: aiohttp asks ``_CheckedResolver`` for a host
name's addresses, and it hands back only those that passed (or refuses the lot), so nothing can re-point the
name between the check and the connection; an address literal was checked with the URL. No proxy from
the environment, no cookies kept between receivers, no redirects followed.

What is retried: no answer (a connection refused or reset, a timeout, a name that does not resolve) and
the answers that mean "later" — ``408``, ``429`` and ``5xx``. What is not: any other ``4xx``, a redirect
(a receiver could point it inside the network), and a destination the policy refuses.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from parley import __version__
from parley.webhooks.destinations import DestinationPolicy, RefusedDestination
from parley.webhooks.signing import Signer

Outcome = Literal["delivered", "retry", "failed"]
EXCERPT_CHARS = 200
_READ_BYTES = 1024
_ERROR_CHARS = 300
_RETRIED_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one attempt came to."""

    outcome: Outcome
    duration_ms: float
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None
    retry_after: float | None = None
    """Seconds the receiver asked to wait (``Retry-After`` on a ``429`` or ``503``)."""


class _CheckedResolver(AbstractResolver):
    """aiohttp's resolver hook: a name's addresses, every one checked by the policy."""

    def __init__(self, policy: DestinationPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._policy.resolve(host, port)
        return [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": socket.IPPROTO_TCP,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error(prefix: str, exc: BaseException) -> str:
    detail = str(exc) or type(exc).__name__
    return f"{prefix}: {detail}"[:_ERROR_CHARS]


class Sender:
    """Posts deliveries; one per process, sharing one connection pool. Built and closed in the event loop
    that uses it."""

    def __init__(
        self,
        *,
        policy: DestinationPolicy,
        signer: Signer,
        timeout_seconds: float,
        max_connections: int,
    ) -> None:
        self._policy = policy
        self._signer = signer
        self._timeout = timeout_seconds
        self._session = aiohttp.ClientSession(
            # Resolved anew for each new connection, so that the check sees what DNS says now.
            connector=aiohttp.TCPConnector(
                limit=max_connections, resolver=_CheckedResolver(policy), use_dns_cache=False
            ),
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"user-agent": f"Parley-Webhooks/{__version__}"},
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._session.close()

    async def send(self, *, url: str, webhook_id: str, body: bytes) -> SendResult:
        """One attempt at posting ``body`` to ``url``."""
        started = time.perf_counter()

        def took() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        try:
            # Checked again: the list may have changed since the message was posted.
            destination = self._policy.check_url(url)
        except RefusedDestination as exc:
            return SendResult("failed", took(), error=f"refused: {exc}"[:_ERROR_CHARS])
        headers = {
            "content-type": "application/json",
            **self._signer.headers(webhook_id=webhook_id, body=body, at=datetime.now(UTC)),
        }
        try:
            async with self._session.post(
                destination.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("retry-after"))
                raw = await response.content.read(_READ_BYTES)
        except RefusedDestination as exc:
            return SendResult("failed", took(), error=f"refused: {exc}"[:_ERROR_CHARS])
        except aiohttp.ClientConnectorDNSError as exc:
            return SendResult("retry", took(), error=_error("could not resolve the host", exc.os_error))
        except TimeoutError as exc:
            return SendResult("retry", took(), error=_error(f"timed out after {self._timeout:g} s", exc))
        except aiohttp.ClientError as exc:
            return SendResult("retry", took(), error=_error("connection failed", exc))
        excerpt = raw.decode("utf-8", errors="replace")[:EXCERPT_CHARS] if raw else None
        if 200 <= status < 300:
            return SendResult("delivered", took(), status_code=status, response_excerpt=excerpt)
        if status in _RETRIED_STATUSES or status >= 500:
            return SendResult(
                "retry",
                took(),
                status_code=status,
                error=f"HTTP {status}",
                response_excerpt=excerpt,
                retry_after=retry_after,
            )
        reason = "a redirect, not followed" if 300 <= status < 400 else "not retried"
        return SendResult(
            "failed", took(), status_code=status, error=f"HTTP {status}: {reason}", response_excerpt=excerpt
        )
