"""``SqlOutbox``: the ``Outbox`` port over any ``Database`` (the queries are ``storage/webhooks.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from parley.core.records import DeliveryAttempt, WebhookDelivery
from parley.core.timestamps import format_timestamp, utc_now
from parley.storage import webhooks
from parley.storage.db import Database


class SqlOutbox:
    """The webhook outbox in Parley's database; each method one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self, *, owner: str, now: datetime, lease_seconds: float, limit: int
    ) -> list[WebhookDelivery]:
        """See ``Outbox.claim``. One statement, run without a transaction around it: every process makes
        this call every PARLEY_WEBHOOK_POLL_SECONDS, mostly finding nothing."""
        async with self._db.one_statement(writes=True) as tx:
            return await webhooks.claim(
                tx,
                owner=owner,
                now=format_timestamp(now),
                lease_until=format_timestamp(now + timedelta(seconds=lease_seconds)),
                limit=limit,
            )

    async def record_attempt(
        self, *, delivery: WebhookDelivery, attempt: DeliveryAttempt, next_attempt_at: datetime | None
    ) -> None:
        """See ``Outbox.record_attempt``."""
        async with self._db.transaction() as tx:
            await webhooks.record_attempt(
                tx,
                delivery=delivery,
                attempt=attempt,
                next_attempt_at=None if next_attempt_at is None else format_timestamp(next_attempt_at),
                now=utc_now(),
            )

    async def release(self, *, owner: str, delivery_ids: list[str]) -> None:
        """See ``Outbox.release``."""
        if not delivery_ids:
            return
        async with self._db.transaction() as tx:
            await webhooks.release(tx, owner=owner, delivery_ids=delivery_ids, now=utc_now())

    async def prune(self, *, finished_before: datetime) -> int:
        """See ``Outbox.prune``."""
        async with self._db.transaction() as tx:
            return await webhooks.prune(tx, finished_before=format_timestamp(finished_before))
