"""One HTTP attempt at a delivery: check the destination again, connect to the address that was checked,
post the signed body, and say what came of it.

What is retried: no answer (a connection refused or reset, a timeout, a name that does not resolve) and
the answers that mean "later" — ``408``, ``429`` and ``5xx``. What is not: any other ``4xx``, a redirect
(never followed: a receiver could point it inside the network), and a destination the policy refuses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

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
    """Posts deliveries; one per process, sharing one connection pool."""

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
        # trust_env=False: a proxy from the environment would send the request somewhere the policy never
        # checked. Redirects are answers, not instructions.
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def send(self, *, url: str, webhook_id: str, body: bytes) -> SendResult:
        """One attempt at posting ``body`` to ``url``."""
        started = time.perf_counter()

        def took() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        try:
            # Checked again: the list may have changed since the message was posted.
            destination = self._policy.check_url(url)
            address = await self._policy.resolve(destination)
        except RefusedDestination as exc:
            return SendResult("failed", took(), error=f"refused: {exc}"[:_ERROR_CHARS])
        except OSError as exc:
            return SendResult("retry", took(), error=_error(f"could not resolve {url}", exc))
        # To the address that was checked, naming the host as the URL does (Host header, TLS server name).
        target = destination.url.copy_with(host=str(address))
        headers = {
            "host": destination.url.netloc.decode("ascii"),
            "content-type": "application/json",
            "user-agent": f"Parley-Webhooks/{__version__}",
            **self._signer.headers(webhook_id=webhook_id, body=body, at=datetime.now(UTC)),
        }
        extensions: dict[str, Any] = {}
        if destination.url.scheme == "https" and destination.literal is None:
            extensions["sni_hostname"] = destination.host
        try:
            async with self._client.stream(
                "POST", target, content=body, headers=headers, extensions=extensions
            ) as response:
                excerpt = await _excerpt(response)
        except httpx.TimeoutException as exc:
            return SendResult("retry", took(), error=_error(f"timed out after {self._timeout:g} s", exc))
        except httpx.HTTPError as exc:
            return SendResult("retry", took(), error=_error("connection failed", exc))
        status = response.status_code
        if 200 <= status < 300:
            return SendResult("delivered", took(), status_code=status, response_excerpt=excerpt)
        if status in _RETRIED_STATUSES or status >= 500:
            return SendResult(
                "retry",
                took(),
                status_code=status,
                error=f"HTTP {status}",
                response_excerpt=excerpt,
                retry_after=_retry_after(response.headers.get("retry-after")),
            )
        reason = "a redirect, not followed" if 300 <= status < 400 else "not retried"
        return SendResult(
            "failed", took(), status_code=status, error=f"HTTP {status}: {reason}", response_excerpt=excerpt
        )


async def _excerpt(response: httpx.Response) -> str | None:
    """The start of the response body, for the record — read no further than that."""
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= _READ_BYTES:
            break
    if not data:
        return None
    return data[:_READ_BYTES].decode("utf-8", errors="replace")[:EXCERPT_CHARS]
