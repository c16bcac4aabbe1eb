"""The one exception hierarchy of Parley's domain.

Services raise these; ``parley.api.errors`` maps them to problem+json in one place. The ``detail`` of a
``ParleyError`` is written for the API's caller and is safe to show; internal exceptions never are.
"""

from __future__ import annotations

from typing import Any


class ParleyError(Exception):
    """Base of every error Parley reports to a caller."""

    status: int = 500
    title: str = "Internal Server Error"
    type_slug: str = "internal"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    def headers(self) -> dict[str, str]:
        """HTTP headers the response must carry (``Retry-After`` on a 429)."""
        return {}


class NotFound(ParleyError):
    """The resource does not exist, or belongs to someone else (we do not say which)."""

    status = 404
    title = "Not Found"
    type_slug = "not-found"


class Conflict(ParleyError):
    """The request is valid but clashes with the resource's current state."""

    status = 409
    title = "Conflict"
    type_slug = "conflict"


class SessionBusy(Conflict):
    """A turn is running on the session and the busy policy refuses to queue another."""

    type_slug = "session-busy"


class InterruptNotPending(Conflict):
    """A resume names an interrupt the session is not waiting on (answered, unknown, another session's)."""

    type_slug = "interrupt-not-pending"


class GraphMismatch(Conflict):
    """A chat message names a graph other than the one its session is bound to."""

    type_slug = "graph-mismatch"


class SessionInterrupted(Conflict):
    """A chat message reached a session that waits on an interrupt."""

    type_slug = "session-interrupted"


class ActionPerformed(Conflict):
    """A cancel reached a turn that has already performed an action: undoing its state would not undo the
    action, and would ask again about it."""

    type_slug = "action-performed"


class Unauthorized(ParleyError):
    """No credentials where the API needs them (``PARLEY_AUTH=keys``): send ``Authorization: Bearer KEY``."""

    status = 401
    title = "Unauthorized"
    type_slug = "unauthorized"
    token_error: str | None = None
    """The ``error`` of the ``WWW-Authenticate`` challenge (RFC 6750), if the request sent a token."""


class InvalidToken(Unauthorized):
    """A bearer token that is not a key of this service: malformed, unknown, wrong or revoked (the caller
    is not told which)."""

    type_slug = "invalid-token"
    token_error = "invalid_token"  # noqa: S105 - RFC 6750's error code, not a secret


class Forbidden(ParleyError):
    """The caller is known but may not do this (an end user answering an operator's review)."""

    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class InvalidInput(ParleyError):
    """A field the schema accepts holds a value the domain refuses."""

    status = 422
    title = "Unprocessable Content"
    type_slug = "validation"

    def __init__(self, detail: str, *, loc: list[str | int], **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.loc = loc


class TooManyRequests(ParleyError):
    """The caller sent more than a limit allows; ``retry_after`` seconds from now it may try again."""

    status = 429
    title = "Too Many Requests"
    type_slug = "rate-limited"

    def __init__(self, detail: str, *, retry_after: int, **extensions: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extensions)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RateLimited(TooManyRequests):
    """The caller went past ``PARLEY_RATE_LIMIT``."""


class QueueFull(TooManyRequests):
    """A session already holds as many unfinished messages as ``PARLEY_MAX_QUEUED_PER_SESSION`` allows."""

    type_slug = "queue-full"


class ServiceUnavailable(ParleyError):
    """The service cannot take the request now (starting, stopping); retry later."""

    status = 503
    title = "Service Unavailable"
    type_slug = "unavailable"


class StorageUnavailable(ServiceUnavailable):
    """Storage could not be reached; the request changed nothing and may be retried."""

    type_slug = "storage-unavailable"


class TurnCancelled(Exception):
    """Raised inside a turn whose cancel was recorded, when it tries to perform an action: the action must
    not happen. Never reaches a caller; the turn ends ``cancelled``."""


class ConfigurationError(Exception):
    """Settings that cannot work; raised at start-up so the service refuses to start."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its class name if it has none), for logs and start-up
    messages — drivers append hints and context an operator does not need there. Never for API responses."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
