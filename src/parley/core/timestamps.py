"""The one way Parley writes a point in time: UTC, microseconds always, ``Z``.

``datetime.isoformat()`` drops the fraction when the microseconds are 0 (``…:13+00:00`` beside
``…:13.655523+00:00``) and pydantic writes UTC as ``Z`` with the same omission, so timestamps compared
or sorted as strings — by SQL, or by a client — came out in the wrong order. Storage and API both use
``format_timestamp``; rows written before it still parse (``datetime.fromisoformat`` reads both forms).
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_timestamp(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC: fixed width, so string order is time order.

    A naive ``datetime`` is taken to be UTC already (Parley never makes local times).
    """
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def utc_now() -> str:
    """The current time, formatted by ``format_timestamp``."""
    return format_timestamp(datetime.now(UTC))
