"""The scale-out runner: turns as jobs of a PostgreSQL-backed queue (procrastinate), run by workers.

- ``QueueRunner`` is what an API instance (``parley serve --runner queue``) uses: ``notify`` defers a job
  "run session S", ``cancel`` asks the workers (through the relay) to cancel a turn. It runs no turn.
- ``QueueWorker`` is ``parley worker``: it runs those jobs. A job drains its session — the oldest pending
  message, then the next, until none is left — exactly like the in-process runner's drain task.

Why it is correct:

- **One turn per session at a time, in arrival order, across every worker**: each job carries the lock
  ``parley-session:<id>`` (procrastinate runs one job per lock at a time), and a job takes the session's
  messages in ``seq`` order from storage, whatever order the jobs were deferred in.
- **No lost wake-up**: the queueing lock lets at most one job wait per session. A message accepted while
  the session's job runs defers a second job, which waits for the lock and finds the message if the
  first job has not taken it already.
- **Nothing accepted is lost**: the message row commits before the job is deferred; a process that dies in
  between, or a database that refused the job, leaves a pending message without a job, which every
  worker's sweep finds and defers again.
- **Worker loss**: workers beat a heartbeat; the sweep hands jobs of a worker silent for
  ``PARLEY_WORKER_STALLED_SECONDS`` back to the queue, and the next worker resumes the turn from its last
  checkpoint (``TurnExecutor``'s recovery, the same as after a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
import procrastinate.exceptions
import procrastinate.jobs
import procrastinate.worker
import psycopg
from procrastinate.exceptions import AlreadyEnqueued
from psycopg_pool import AsyncConnectionPool

from parley.core.errors import StorageUnavailable, first_line
from parley.core.ports import Store
from parley.core.timestamps import format_timestamp
from parley.runners.relay import PostgresRelay
from parley.runners.turn_tasks import TurnTasks
from parley.storage.postgres_db import check_if_dropped

logger = logging.getLogger(__name__)

TASK_NAME = "parley.run_session"
_LOCK_PREFIX = "parley-session:"
# A queue worker that ran this long before it stopped is started again without the backoff of earlier stops.
_WORKED_SECONDS = 30.0
# A message this fresh may still be between its commit and its job's deferral: the sweep leaves it be.
_SWEEP_GRACE_SECONDS = 2.0

_ORPHANS_SQL = (
    "SELECT DISTINCT m.session_id FROM parley_messages m "
    "WHERE m.status IN ('queued', 'running') AND m.updated_at < %(cutoff)s "
    "AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j "
    "WHERE j.lock = %(prefix)s || m.session_id AND j.status IN ('todo', 'doing'))"
)


def session_lock(session_id: str) -> str:
    """The procrastinate lock (and queueing lock) of a session's jobs."""
    return _LOCK_PREFIX + session_id


async def _run_session(context: procrastinate.JobContext, session_id: str) -> None:
    worker: QueueWorker = context.additional_context["parley"]
    await worker.drain(session_id)


def _pool(**options: Any) -> AsyncConnectionPool[Any]:
    """procrastinate's connection pool, built as Parley's own: every statement procrastinate runs is one
    call of its SQL functions, atomic by itself, so its connections are in autocommit mode (by default
    each statement took BEGIN and COMMIT round trips besides); and the pool asks the server before
    handing one out only when it may have dropped it (``check_if_dropped``; procrastinate asks every
    time). Together a defer, a fetch or a finish was four round trips and is now one."""
    options["check"] = check_if_dropped
    # Not through the pool's connection kwargs: procrastinate opens its listening connection with those
    # and autocommit=True of its own, which would then be given twice.
    options["configure"] = _autocommit
    return AsyncConnectionPool(**options)


async def _autocommit(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.set_autocommit(True)


def queue_app(url: str, *, pool_size: int) -> procrastinate.App:
    """The procrastinate app on ``url``, with the session task registered (not opened)."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=url, min_size=1, max_size=pool_size, pool_factory=_pool
        )
    )
    # A job fails only when storage does (a turn's own failures end in its message); retry it with backoff.
    # Past the last retry the sweep defers the session again, so nothing is given up for good.
    register = app.task(
        name=TASK_NAME,
        pass_context=True,
        retry=procrastinate.RetryStrategy(max_attempts=8, exponential_wait=2),
    )
    register(_run_session)
    return app


async def defer(app: procrastinate.App, session_id: str) -> None:
    """Make sure a job will drain ``session_id`` (one already waiting will)."""
    lock = session_lock(session_id)
    with contextlib.suppress(AlreadyEnqueued):
        await app.configure_task(TASK_NAME, lock=lock, queueing_lock=lock).defer_async(session_id=session_id)


class _SupervisedWorker(procrastinate.worker.Worker):
    """procrastinate's worker, with its side tasks (the job listener, the heartbeat) watched for its
    whole life.

    procrastinate watches them only until the first one returns, and its periodic deferrer returns at
    once when no periodic task is registered (Parley has none): a listener that died later with its
    connection (the database restarted) went unnoticed, and the worker went on finding jobs only by
    polling, seconds late, until the process was restarted (procrastinate issue #1597). Here a side task
    that fails, whenever it fails, stops the worker, and ``QueueWorker.run`` starts it again, listening.
    """

    async def _monitor_side_tasks(self, side_tasks: list[asyncio.Task[Any]]) -> None:
        pending = set(side_tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(not task.cancelled() and task.exception() is not None for task in done):
                await super()._monitor_side_tasks(list(done))  # logs the failure, stops the worker
                return


class QueueRunner:
    """The ``Runner`` of an API instance in the scale-out mode (see the module docstring)."""

    def __init__(self, *, app: procrastinate.App, relay: PostgresRelay) -> None:
        self._app = app
        self._relay = relay
        self._accepting = False

    @property
    def running(self) -> bool:
        """Whether the runner takes new work."""
        return self._accepting

    async def start(self) -> None:
        """Open the queue's connections. Recovery is the workers' sweep, not ours."""
        await self._app.open_async()
        self._accepting = True

    async def notify(self, session_id: str) -> None:
        """Defer the session's job. If the queue cannot take it now the message is still stored, and a
        worker's sweep defers it shortly: the request does not fail for it."""
        if not self._accepting:
            return
        try:
            await defer(self._app, session_id)
        except Exception as exc:
            logger.warning(
                "could not defer session %s now (%s); the sweep will", session_id, type(exc).__name__
            )

    async def cancel(self, message_id: str) -> None:
        """Ask the worker running the turn to cancel it (the cancel is already recorded in storage, so a
        worker about to start it will not)."""
        await self._relay.send_cancel(message_id)

    async def stop(self, *, grace: float) -> None:
        """Stop deferring; the workers carry on."""
        self._accepting = False
        await self._app.close_async()


class QueueWorker:
    """``parley worker``: runs session jobs from the queue (see the module docstring)."""

    def __init__(
        self,
        *,
        app: procrastinate.App,
        store: Store,
        turns: TurnTasks,
        concurrency: int,
        stalled_seconds: float,
        grace_seconds: float,
        name: str,
    ) -> None:
        self._app = app
        self._store = store
        self._turns = turns
        self._concurrency = concurrency
        self._stalled = stalled_seconds
        self._grace = grace_seconds
        self._name = name

    async def drain(self, session_id: str) -> None:
        """Run the session's pending messages, oldest first, until none is left."""
        while True:
            head = await self._store.next_pending(session_id=session_id)
            if head.message is None:
                return
            await self._turns.run(head.message)

    async def cancel(self, message_id: str) -> None:
        """A cancel from the relay: stop the turn if it runs here."""
        if self._turns.cancel(message_id):
            logger.info("cancelled the turn of message %s", message_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Run jobs until ``stop`` is set; then give running turns the grace period. The caller opens and
        closes the app. If the queue's worker stops on its own (the database went away), it is started
        again with a backoff: a worker process outlives a database restart."""
        sweeper = asyncio.create_task(self._sweep_forever(), name="parley-sweep")
        stopping = asyncio.create_task(stop.wait())
        backoff = 0.5
        try:
            while not stop.is_set():
                started = time.monotonic()
                worker = asyncio.create_task(self._work(), name="parley-worker")
                await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if time.monotonic() - started > _WORKED_SECONDS:
                    backoff = 0.5  # it had been working: this is a new outage, not the same one again
                if not worker.done():
                    worker.cancel()  # stop is set: procrastinate gives running jobs the grace period
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
                    return
                error = worker.exception()
                logger.warning(
                    "the queue worker stopped (%s); starting it again in %.1fs",
                    "no error" if error is None else first_line(error),
                    backoff,
                )
                await asyncio.wait({stopping}, timeout=backoff)
                backoff = min(backoff * 2, 10.0)
        finally:
            sweeper.cancel()
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    async def _work(self) -> None:
        # What app.run_worker_async does, with procrastinate's worker replaced by the supervised one (the
        # app's tasks are registered in code: there are no import paths to import first).
        worker = _SupervisedWorker(
            app=self._app,
            name=self._name,
            concurrency=self._concurrency,
            listen_notify=True,
            # A fallback only: new jobs and freed locks arrive by notification.
            fetch_job_polling_interval=max(1.0, self._stalled / 4),
            shutdown_graceful_timeout=self._grace,
            delete_jobs="successful",
            additional_context={"parley": self},
            install_signal_handlers=False,
            update_heartbeat_interval=max(0.5, self._stalled / 5),
            stalled_worker_timeout=self._stalled,
        )
        await worker.run()  # type: ignore[no-untyped-call] # procrastinate leaves it unannotated

    async def _sweep_forever(self) -> None:
        interval = max(0.5, self._stalled / 3)
        while True:
            try:
                await self.sweep()
            except (StorageUnavailable, OSError) as exc:
                logger.warning("sweep failed (%s); next in %.1fs", type(exc).__name__, interval)
            except Exception:
                logger.exception("sweep failed; next in %.1fs", interval)
            await asyncio.sleep(interval)

    async def sweep(self) -> int:
        """Hand the jobs of silent workers back to the queue, and defer a job for every session with a
        pending message and none; how many jobs it retried or deferred."""
        manager = self._app.job_manager
        stalled = list(
            await manager.get_stalled_jobs(task_name=TASK_NAME, seconds_since_heartbeat=self._stalled)
        )
        for job in stalled:
            # Not retried in place: a newer job of the session may already wait under the same queueing
            # lock. The lost job is ended (which frees the session's lock) and the session gets a job, new
            # or the one waiting; that job resumes the turn from its checkpoint.
            logger.warning("job %s (%s) lost its worker; handing its session to another", job.id, job.lock)
            try:
                await manager.finish_job(job, status=procrastinate.jobs.Status.FAILED, delete_job=False)
            except procrastinate.exceptions.ConnectorException:
                continue  # another worker's sweep ended it first
            session_id = job.task_kwargs.get("session_id")
            if isinstance(session_id, str):
                await defer(self._app, session_id)
        cutoff = format_timestamp(datetime.now(UTC) - timedelta(seconds=_SWEEP_GRACE_SECONDS))
        rows: list[dict[str, Any]] = await self._app.connector.execute_query_all_async(
            _ORPHANS_SQL, cutoff=cutoff, prefix=_LOCK_PREFIX
        )
        for row in rows:
            logger.info("session %s has pending messages and no job; deferring one", row["session_id"])
            await defer(self._app, str(row["session_id"]))
        return len(stalled) + len(rows)
