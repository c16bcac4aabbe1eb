"""``Deliverer``: the background task of every Parley process (``parley serve`` and ``parley worker``) that
sends the webhook outbox.

It claims due deliveries with a lease (``Outbox.claim``), sends each in a task of its own (at most
``PARLEY_WEBHOOK_CONCURRENCY`` at once), and records every attempt. It looks at the outbox when this
process ends a message with a callback (``SqlStore.on_delivery_recorded`` wakes it: no poll between a
turn's end and its webhook), when a retry it scheduled is due, and every ``PARLEY_WEBHOOK_POLL_SECONDS``
besides — for retries another process scheduled and for deliveries whose process died holding the lease
(``PARLEY_WEBHOOK_TIMEOUT_SECONDS`` + 5 s), which any process then takes over.

Retries back off exponentially with jitter (``core.retry.backoff_seconds``: from
``PARLEY_WEBHOOK_RETRY_BASE_SECONDS`` up to ``PARLEY_WEBHOOK_RETRY_MAX_SECONDS``, or longer when the
receiver's ``Retry-After`` asks) until ``PARLEY_WEBHOOK_RETRY_HOURS`` after the message ended; then the
delivery is ``failed``. Ended deliveries are pruned after ``PARLEY_WEBHOOK_KEEP_DAYS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from parley.core.errors import NotFound, StorageUnavailable, first_line
from parley.core.ports import Outbox, Store
from parley.core.records import DeliveryAttempt, MessageRecord, WebhookDelivery
from parley.core.retry import backoff_seconds
from parley.observability.metrics import Metrics
from parley.webhooks.payload import message_payload
from parley.webhooks.sender import Sender, SendResult

logger = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 5.0
"""A lease outlasts the request's timeout by this, for resolving the name and recording the attempt."""
_PRUNE_EVERY_SECONDS = 3600.0
_STORAGE_BACKOFF_SECONDS = 1.0
_STOP_SECONDS = 5.0
"""How long a stop waits for the loop's current look at the outbox before cancelling it."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how often a delivery is tried again."""

    base_seconds: float
    max_seconds: float
    give_up_after: timedelta
    """From the message's end (the delivery's creation): no attempt is scheduled past it."""


class Deliverer:
    """See the module docstring."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        store: Store,
        sender: Sender,
        retry: RetryPolicy,
        concurrency: int,
        poll_seconds: float,
        lease_seconds: float,
        keep: timedelta,
        metrics: Metrics | None = None,
    ) -> None:
        self._outbox = outbox
        self._store = store
        self._sender = sender
        self._retry = retry
        self._concurrency = concurrency
        self._poll_seconds = poll_seconds
        self._lease_seconds = lease_seconds
        self._keep = keep
        self._metrics = metrics
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """This process's name on the leases it takes."""
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._sending: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._timer_keys = itertools.count()
        self._next_prune = 0.0

    def wake(self) -> None:
        """Look at the outbox now (a delivery was just recorded, a slot freed, a retry is due)."""
        self._wake.set()

    async def start(self) -> None:
        """Begin sending (what is due already, too: left by a previous run)."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="parley-webhooks")

    async def stop(self, *, grace: float) -> None:
        """Stop claiming; give attempts in flight ``grace`` seconds, then cut them and give their
        deliveries back (due at once for whichever process looks next)."""
        if self._loop_task is not None:
            # Stopped by an event, not a cancel: on PostgreSQL a cancel landing in a query can come back as a
            # storage error, which the loop survives by design — and the stop would wait for it for good.
            self._stopping.set()
            self._wake.set()
            done, _ = await asyncio.wait({self._loop_task}, timeout=_STOP_SECONDS)
            if not done:
                self._loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loop_task
            self._loop_task = None
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        pending = list(self._sending.values())
        if pending:
            await asyncio.wait(pending, timeout=grace)
        cut = [delivery_id for delivery_id, task in self._sending.items() if not task.done()]
        for task in self._sending.values():
            task.cancel()
        await asyncio.gather(*self._sending.values(), return_exceptions=True)
        if cut:
            try:
                await self._outbox.release(owner=self.owner, delivery_ids=cut)
            except StorageUnavailable as exc:
                # Their leases lapse by themselves; they are only taken over later.
                logger.warning("webhook leases not released at shutdown: %s", first_line(exc))
        await self._sender.close()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the look, so a wake during it is not lost: the wait below returns at once.
            self._wake.clear()
            try:
                await self._claim_and_send()
                await self._prune_now_and_then()
            except StorageUnavailable as exc:
                if self._stopping.is_set():
                    return
                logger.warning("webhook outbox unavailable: %s", first_line(exc))
                await self._pause(_STORAGE_BACKOFF_SECONDS)
                continue
            except Exception:
                if self._stopping.is_set():
                    return
                logger.exception("webhook deliverer: unexpected error; going on")
                await self._pause(_STORAGE_BACKOFF_SECONDS)
                continue
            await self._pause(self._poll_seconds)

    async def _pause(self, seconds: float) -> None:
        """Until woken (or stopped), at most ``seconds``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _claim_and_send(self) -> None:
        free = self._concurrency - len(self._sending)
        if free <= 0:
            return  # a finishing attempt wakes the loop
        claimed = await self._outbox.claim(
            owner=self.owner, now=datetime.now(UTC), lease_seconds=self._lease_seconds, limit=free
        )
        for delivery in claimed:
            task = asyncio.create_task(self._attempt(delivery), name=f"parley-webhook-{delivery.delivery_id}")
            self._sending[delivery.delivery_id] = task
            task.add_done_callback(functools.partial(self._done, delivery.delivery_id))
        # Every slot taken means there may be more due: ``_done`` wakes the loop when the first one frees.

    def _done(self, delivery_id: str, _: asyncio.Task[None]) -> None:
        full = len(self._sending) >= self._concurrency
        self._sending.pop(delivery_id, None)
        if full:
            self.wake()  # the loop stopped claiming for want of a slot; one is free now

    async def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY_SECONDS
        removed = await self._outbox.prune(finished_before=datetime.now(UTC) - self._keep)
        if removed:
            logger.info("pruned %d ended webhook deliveries", removed)

    async def _attempt(self, delivery: WebhookDelivery) -> None:
        started = datetime.now(UTC)
        message: MessageRecord | None = None
        try:
            message = await self._store.get_message(message_id=delivery.message_id, user_id=delivery.user_id)
        except NotFound:
            result = SendResult("failed", 0.0, error="the message no longer exists")
        except StorageUnavailable as exc:
            logger.warning("webhook %s: message unreadable: %s", delivery.delivery_id, first_line(exc))
            result = SendResult("retry", 0.0, error="storage unavailable")
        else:
            result = await self._sender.send(
                url=delivery.url, webhook_id=delivery.delivery_id, body=message_payload(message)
            )
        outcome, error, due = self._next(delivery, result)
        attempt = DeliveryAttempt(
            attempt=delivery.attempts,
            started_at=started,
            duration_ms=result.duration_ms,
            outcome=outcome,
            status_code=result.status_code,
            error=error,
            response_excerpt=result.response_excerpt,
        )
        try:
            await self._outbox.record_attempt(delivery=delivery, attempt=attempt, next_attempt_at=due)
        except StorageUnavailable as exc:
            # The lease lapses and the delivery is tried again: at least once, as promised.
            logger.warning("webhook %s: attempt not recorded: %s", delivery.delivery_id, first_line(exc))
            return
        delay = None
        if outcome == "delivered" and message is not None and message.finished_at is not None:
            delay = (datetime.now(UTC) - message.finished_at).total_seconds()
        if self._metrics is not None:
            self._metrics.webhook_attempted(outcome=outcome, delay_seconds=delay)
        log = logger.info if outcome == "delivered" else logger.warning
        log(
            "webhook %s of message %s, attempt %d: %s%s",
            delivery.delivery_id,
            delivery.message_id,
            delivery.attempts,
            outcome,
            "" if error is None else f" ({error})",
        )
        if due is not None:
            wait = max((due - datetime.now(UTC)).total_seconds(), 0.0)
            key = next(self._timer_keys)
            self._timers[key] = asyncio.get_running_loop().call_later(wait, self._due, key)

    def _due(self, key: int) -> None:
        self._timers.pop(key, None)
        self.wake()

    def _next(self, delivery: WebhookDelivery, result: SendResult) -> tuple[str, str | None, datetime | None]:
        """The attempt's recorded outcome and error, and when the next one is due (retries only)."""
        if result.outcome != "retry":
            return result.outcome, result.error, None
        delay = backoff_seconds(delivery.attempts, base=self._retry.base_seconds, cap=self._retry.max_seconds)
        if result.retry_after is not None:
            # What the receiver asked for, even past the usual backoff; past the retry window it gives up.
            delay = max(delay, result.retry_after)
        due = datetime.now(UTC) + timedelta(seconds=delay)
        if due > delivery.created_at + self._retry.give_up_after:
            hours = self._retry.give_up_after.total_seconds() / 3600
            return (
                "failed",
                f"gave up after {delivery.attempts} attempts over {hours:g} h: {result.error}",
                None,
            )
        return "retry", result.error, due
