"""One turn: run the graph for one message and give the message exactly one terminal status.

The rules a turn follows, whatever interrupts it:

- **Resume, never repeat.** Checkpoints carry the message id (``parley_message_id``). A turn started again
  (after a crash, a retry or a restart) first reads the session's latest checkpoint: if its own input is
  already there it continues from that checkpoint with no new input — completed steps are not run again
  (with ``durability="sync"``, every step is a checkpoint) — and if the graph already finished or paused
  (an interrupt, or a static breakpoint before or after a node), it only records the outcome. The user's
  message also enters the state under the message id, so even feeding it twice could not append it twice.
- **Retry what is transient.** Timeouts, rate limits, 5xx answers and a locked database are retried with
  exponential backoff and jitter, continuing from the last checkpoint. Every start counts in ``attempts``,
  stored on the message; past ``max_attempts`` the message fails. A message picked up with its attempts
  already spent (it crashed the process every time) fails without running: no crash loops — unless its
  checkpoint shows the graph had finished or paused (only recording the outcome failed): that outcome
  stands.
- **A deadline per turn**: past ``turn_timeout_seconds`` (retries and backoff included) it fails, reason
  ``timeout``.
- **Failed or cancelled leaves no trace in the graph state**: the session's state goes back to the
  checkpoint the turn started from, so the next turn never sees half a turn (say, a tool call without its
  result). Side effects already made are not undone; they carry idempotency keys. Rolling back and
  recording the outcome run to the end whatever cancel arrives meanwhile: the message always ends.
- **An action is never taken back**: once a turn has performed an action (``Store.perform_once``) it can
  no longer be cancelled, and once its cancel is recorded it may perform none — a rollback past an action
  would not undo it, and a resume would ask again about what was already done.
- **A paused graph takes only answers**: a chat message whose turn comes while the session waits on an
  interrupt (it was queued behind a resume that paused again, failed or was cancelled) fails without
  running, ``session_interrupted``: fed to the graph, it would drop the question it waits on.
- **Stopping is not failing**: when the process stops, a running turn is cancelled and its message goes
  back to ``queued`` without spending an attempt; the next start runs it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.pregel import Pregel
from langgraph.types import Command, Interrupt, StateSnapshot

from parley.core.checkpoint_tags import CHECKPOINT_TAG, GRAPH_TAG, ROLLBACK_TAG, USER_TAG
from parley.core.errors import StorageUnavailable, TurnCancelled
from parley.core.events import EventPublisher
from parley.core.ports import Store
from parley.core.programs import Program, ProgramSet
from parley.core.records import MessageRecord
from parley.core.retry import backoff_seconds, is_transient
from parley.core.rewind import Rewinder
from parley.core.statuses import CANCELLED_ERROR, InterruptKind, MessageKind, MessageStatus
from parley.core.telemetry import NO_TELEMETRY, TurnScope, TurnTelemetry
from parley.core.usage import StreamingTurnObserver, TurnObserver

logger = logging.getLogger(__name__)

Durability = Literal["sync", "async", "exit"]


@dataclass(frozen=True, slots=True)
class TurnPolicy:
    """How turns run: checkpointing, retries, deadline."""

    durability: Durability = "sync"
    max_attempts: int = 3
    retry_base_seconds: float = 0.5
    retry_max_seconds: float = 30.0
    timeout_seconds: float = 300.0
    interrupt_before: tuple[str, ...] = ()
    interrupt_after: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """What a graph run produced, before it is stored."""

    status: MessageStatus
    reply: str | None = None
    interrupt: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None
    ran: bool = True
    """False for a message refused without running its graph: there is no state of its to roll back (and
    no graph to do it with, when its session's graph is not served)."""


def _failed(kind: str, detail: str) -> TurnOutcome:
    return TurnOutcome(status=MessageStatus.FAILED, error={"type": kind, "detail": detail})


_CANCELLED = TurnOutcome(status=MessageStatus.CANCELLED, error=CANCELLED_ERROR)


_ROLLBACK_FLOOR_SECONDS = 10.0

BREAKPOINT_PREFIX = "breakpoint:"
"""Interrupt ids Parley makes up for static breakpoints, which LangGraph reports without one."""


def _interrupts(values: Sequence[Interrupt]) -> list[dict[str, Any]]:
    return [{"id": i.id, "value": i.value, "kind": InterruptKind.of(i.value).value} for i in values]


def _breakpoint(checkpoint_id: str, nodes: Sequence[str]) -> list[dict[str, Any]]:
    value = {"kind": InterruptKind.BREAKPOINT.value, "nodes": list(nodes)}
    return [{"id": BREAKPOINT_PREFIX + checkpoint_id, "value": value, "kind": InterruptKind.BREAKPOINT.value}]


def _outcome_of_state(
    program: Program, values: Any, interrupts: Sequence[Interrupt], message_id: str
) -> TurnOutcome:
    if interrupts:
        return TurnOutcome(status=MessageStatus.INTERRUPTED, interrupt=_interrupts(interrupts))
    return TurnOutcome(
        status=MessageStatus.COMPLETED, reply=program.adapter.reply(values, message_id=message_id)
    )


def _copy_as(program: Program) -> str | None:
    """How a checkpoint is copied to become the head again (a rollback, a rewind). A ``StateGraph``'s
    ``update_state(config, None)`` copies the state with no writes; an entrypoint's would write None as
    its return value, so it is copied with LangGraph's ``__copy__`` (the copy is a fork of the same
    parent, and keeps none of the metadata Parley asks it to add)."""
    return "__copy__" if program.kind == "functional" else None


def _thread(session_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": session_id}}


def _uncancel() -> None:
    """Take back a cancellation the current task has handled, so that later awaits are not cut short."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


class GraphTurns:
    """Runs turns of one hosted program and records their outcome (see the module docstring)."""

    def __init__(
        self,
        *,
        program: Program,
        checkpointer: BaseCheckpointSaver[Any],
        store: Store,
        events: EventPublisher,
        policy: TurnPolicy,
        cancel_requests: set[str],
        ended: list[Callable[[str], None]],
        telemetry: TurnTelemetry = NO_TELEMETRY,
    ) -> None:
        self._program = program
        self._graph: Pregel[Any, Any, Any, Any] = program.graph
        self._telemetry = telemetry
        self._checkpointer = checkpointer
        self._store = store
        self._events = events
        self._policy = policy
        # Shared by every program's turns: a cancel is requested by message id, before its graph is known.
        self._cancel_requests = cancel_requests
        self._rewinder = Rewinder(
            graph=program.graph,
            checkpointer=checkpointer,
            store=store,
            events=events,
            repose=self._repose,
            breakpoint_outcome=_breakpoint,
            interrupt_before=policy.interrupt_before,
            copy_as=_copy_as(program),
        )
        self._ended = ended

    async def run(self, message: MessageRecord, *, refuse: TurnOutcome | None = None) -> MessageRecord | None:
        """Run ``message``'s turn to a terminal status; None if it was already terminal. With ``refuse``,
        the message ends with that outcome without running."""
        try:
            with self._telemetry.turn(message) as scope:
                return await self._run(message, scope, refuse)
        finally:
            for callback in self._ended:
                callback(message.session_id)

    async def _run(
        self, message: MessageRecord, scope: TurnScope, refuse: TurnOutcome | None
    ) -> MessageRecord | None:
        message_id = message.message_id
        running = await self._store.mark_running(message_id=message_id)
        if running is None:
            self._cancel_requests.discard(message_id)
            return None
        if refuse is not None:
            return await self._end(running, refuse, StreamingTurnObserver(lambda text, speaker: None), scope)
        if running.kind is MessageKind.REWIND:
            return await self._rewind(running)
        # One observer for all the turn's attempts: it streams tokens and sums up the model calls.
        observer = StreamingTurnObserver(
            lambda text, speaker: self._events.publish(
                message_id, "token", {"text": text, "node": speaker[0], "namespace": list(speaker[1])}
            )
        )
        try:
            if message_id in self._cancel_requests or running.cancel_requested:
                outcome = _CANCELLED
            elif running.kind is MessageKind.CHAT and await self._store.waits_on_interrupt(
                session_id=running.session_id
            ):
                # Queued behind a resume that did not move the graph on (it failed, was cancelled or
                # paused again): fed to the paused graph, this message would drop what it waits on.
                outcome = _failed(
                    "session_interrupted",
                    "The session was waiting on an interrupt when this message's turn came; "
                    "answer it, then send the message again.",
                )
            elif running.attempts > self._policy.max_attempts:
                # Its last start may have reached the end and only failed to record it (storage was
                # unavailable): what the graph reached stands; only a turn left mid-way has failed.
                outcome = await self._reached(running) or _failed(
                    "attempts_exhausted",
                    f"The turn was started {running.attempts - 1} times without finishing; given up.",
                )
            else:
                self._announce(running)
                outcome = await self._attempts(running, observer, scope)
        except asyncio.CancelledError:
            if message_id not in self._cancel_requests:
                await self._release(message_id)
                raise
            _uncancel()
            outcome = _CANCELLED
        return await self._end(running, outcome, observer, scope)

    async def _end(
        self, message: MessageRecord, outcome: TurnOutcome, observer: StreamingTurnObserver, scope: TurnScope
    ) -> MessageRecord | None:
        """Roll back (if the turn failed or was cancelled) and record ``outcome``, to the end.

        It runs in a task of its own that a cancel cannot interrupt: cut short, it would leave the
        message ``running`` with no turn (and a half-done rollback). A cancel requested meanwhile has
        nothing left to stop; a shutdown (an unrequested cancellation) still stops it, and the message
        goes back to ``queued`` as any stopped turn does.
        """
        ending = asyncio.create_task(
            self._conclude(message, outcome, observer, scope), name=f"parley-end-{message.message_id}"
        )
        while True:
            try:
                return await asyncio.shield(ending)
            except asyncio.CancelledError:
                if message.message_id not in self._cancel_requests:
                    ending.cancel()
                    await asyncio.gather(ending, return_exceptions=True)
                    await self._release(message.message_id)
                    raise
                _uncancel()

    async def _conclude(
        self, message: MessageRecord, outcome: TurnOutcome, observer: StreamingTurnObserver, scope: TurnScope
    ) -> MessageRecord | None:
        message_id = message.message_id
        if outcome.ran and outcome.status in (MessageStatus.FAILED, MessageStatus.CANCELLED):
            try:
                # Bounded, since no cancel stops it (asking a resume's questions again runs the graph) —
                # but never by less than a floor: a short turn deadline must not leave half a turn in the
                # state because the machine was busy while it was undone.
                async with asyncio.timeout(max(self._policy.timeout_seconds, _ROLLBACK_FLOOR_SECONDS)):
                    reposed = await self._rollback(message)
            except Exception:
                # The outcome stands; the next turn then starts from the half turn's checkpoint.
                logger.exception("could not roll back the state of message %s", message_id)
            else:
                if reposed:
                    outcome = TurnOutcome(status=outcome.status, error=outcome.error, interrupt=reposed)
        # Tokens held for review are published only now, and only if no review is pending; the turn's
        # events are stored before its end, whose closing events (``done`` last) storage writes with it.
        observer.settle(publish=outcome.status is MessageStatus.COMPLETED)
        await self._events.flush(message_id)
        final = await self._store.finish(
            message_id=message_id,
            status=outcome.status,
            reply=outcome.reply,
            interrupt=outcome.interrupt,
            error=outcome.error,
            usage=observer.summary() if observer.calls else None,
        )
        self._cancel_requests.discard(message_id)
        if final is not None:
            self._events.publish_closing(final)
            scope.ended(final, observer)
        return final

    async def _rewind(self, message: MessageRecord) -> MessageRecord | None:
        """Run a rewind (``core/rewind.py``) to the end: it is short and moves the head once, so a cancel
        requested meanwhile does not cut it (one requested before it started does); a shutdown does, and
        the message goes back to ``queued`` to run again."""
        message_id = message.message_id
        if message_id in self._cancel_requests or message.cancel_requested:
            self._cancel_requests.discard(message_id)
            final = await self._store.finish_rewind(
                message_id=message_id, status=MessageStatus.CANCELLED, interrupt=None, error=CANCELLED_ERROR
            )
            if final is not None:
                self._events.publish_closing(final)
            return final
        rewinding = asyncio.create_task(self._rewinder.run(message), name=f"parley-rewind-{message_id}")
        try:
            while True:
                try:
                    return await asyncio.shield(rewinding)
                except asyncio.CancelledError:
                    if message_id not in self._cancel_requests:
                        rewinding.cancel()
                        await asyncio.gather(rewinding, return_exceptions=True)
                        await self._release(message_id)
                        raise
                    _uncancel()
        finally:
            self._cancel_requests.discard(message_id)

    async def _repose(self, config: RunnableConfig, message: MessageRecord) -> list[dict[str, Any]] | None:
        outcome = await self._stream(None, dict(config), message)
        return outcome.interrupt

    def _announce(self, running: MessageRecord) -> None:
        """An attempt starts: ``status`` running, with its number (past the first, a stream's client
        drops the reply text it has: the retry streams it again)."""
        status = {"status": MessageStatus.RUNNING.value, "attempt": running.attempts}
        self._events.publish(running.message_id, "status", status)

    async def _release(self, message_id: str) -> None:
        try:
            await self._store.release(message_id=message_id)
        except StorageUnavailable:
            # Left 'running': the next start resumes it all the same (spending one attempt).
            logger.warning("could not release message %s while stopping", message_id)

    async def _attempts(self, first: MessageRecord, observer: TurnObserver, scope: TurnScope) -> TurnOutcome:
        callbacks = [observer, *scope.callbacks]
        try:
            async with asyncio.timeout(self._policy.timeout_seconds):
                return await self._retrying(first, callbacks)
        except TimeoutError:
            # Transient TimeoutErrors are handled inside; one that gets here is the deadline's own.
            return _failed("timeout", f"The turn took longer than {self._policy.timeout_seconds:g} s.")

    async def _retrying(self, record: MessageRecord, callbacks: list[BaseCallbackHandler]) -> TurnOutcome:
        while True:
            try:
                return await self._invoke(record, callbacks)
            except TurnCancelled:
                # A cancel was recorded before the turn's action could run: the action was refused.
                return _CANCELLED
            except Exception as exc:
                transient = is_transient(exc)
                logger.warning(
                    "turn attempt %d of message %s failed (%s)%s",
                    record.attempts,
                    record.message_id,
                    type(exc).__name__,
                    "; will retry" if transient and record.attempts < self._policy.max_attempts else "",
                    exc_info=not transient,
                )
                if not transient:
                    # The exception's class and text are in the log above, never in the answer.
                    return _failed("turn_failed", "The turn failed; the session remains usable.")
                if record.attempts >= self._policy.max_attempts:
                    return _failed(
                        "retries_exhausted",
                        f"The turn failed {record.attempts} times on a transient error; "
                        "the session remains usable.",
                    )
            await asyncio.sleep(
                backoff_seconds(
                    record.attempts,
                    base=self._policy.retry_base_seconds,
                    cap=self._policy.retry_max_seconds,
                )
            )
            again = await self._store.mark_running(message_id=record.message_id)
            if again is None:
                raise RuntimeError(f"message {record.message_id} ended while its turn was retrying")
            record = again
            self._announce(record)

    def _fresh_input(self, message: MessageRecord) -> Any:
        if message.kind is MessageKind.RESUME:
            answer = message.resume or {}
            interrupt_id = str(answer.get("interrupt_id", ""))
            if interrupt_id.startswith(BREAKPOINT_PREFIX):
                return None  # going on past a static breakpoint is running with no input
            # By id, so that with several pending interrupts this answers exactly this one.
            return Command(resume={interrupt_id: answer.get("value")})
        return self._program.adapter.to_input(message)

    def _input_applied(self, message: MessageRecord, snapshot: StateSnapshot) -> bool:
        """Whether the graph has taken the user's message in (the program's adapter knows where it
        looks): a checkpoint tagged with the message may predate that, and then the turn has not
        started, whatever the tag says."""
        return message.kind is MessageKind.RESUME or self._program.adapter.input_applied(message, snapshot)

    async def _own_snapshot(self, message: MessageRecord) -> StateSnapshot | None:
        """The session's latest state if this message's turn wrote it and its input is in it: the turn
        had started, and goes on from there. None if the turn has not started."""
        snapshot = await self._graph.aget_state(_thread(message.session_id))
        if (snapshot.metadata or {}).get(CHECKPOINT_TAG) == message.message_id and self._input_applied(
            message, snapshot
        ):
            return snapshot
        return None

    async def _paused(self, message: MessageRecord, snapshot: StateSnapshot) -> TurnOutcome | None:
        """The outcome if the turn's latest state is a pause (only its recording was lost): an interrupt, or
        a static breakpoint — before the nodes to run next, or after the nodes of the step that wrote it."""
        if snapshot.interrupts:
            return _outcome_of_state(self._program, snapshot.values, snapshot.interrupts, message.message_id)
        if set(snapshot.next) & set(self._policy.interrupt_before) or await self._after_breakpoint(snapshot):
            checkpoint_id = str(snapshot.config["configurable"]["checkpoint_id"])
            return TurnOutcome(
                status=MessageStatus.INTERRUPTED, interrupt=_breakpoint(checkpoint_id, snapshot.next)
            )
        return None

    async def _after_breakpoint(self, snapshot: StateSnapshot) -> bool:
        """Whether LangGraph paused (``interrupt_after``) once it had saved ``snapshot``.

        It decides that right after saving a step's checkpoint, from the tasks that step ran: a crash in
        between leaves the checkpoint without the pause, and continuing from it (``astream(None)``
        resumes past any breakpoint) would run on. The step's tasks are those of the checkpoint before it
        (``durability="sync"`` saves one per step), read as LangGraph reads them.
        """
        metadata = snapshot.metadata or {}
        if (
            not self._policy.interrupt_after
            or metadata.get("source") != "loop"
            or snapshot.parent_config is None
        ):
            return False
        step = await self._graph.aget_state(snapshot.parent_config)
        if (step.metadata or {}).get("step") != metadata.get("step", 0) - 1:
            return False  # not the step just before (checkpoints skipped by another durability)
        return any(task.name in self._policy.interrupt_after for task in step.tasks)

    async def _reached(self, message: MessageRecord) -> TurnOutcome | None:
        """What the turn's graph run already reached — paused or finished — read from its checkpoint
        without running anything; None if it is mid-way or never started."""
        snapshot = await self._own_snapshot(message)
        if snapshot is None:
            return None
        paused = await self._paused(message, snapshot)
        if paused is not None:
            return paused
        if not snapshot.next and not snapshot.tasks:
            # Nothing left to run and no step's writes waiting to be applied: the graph had finished.
            return _outcome_of_state(self._program, snapshot.values, (), message.message_id)
        return None

    async def _invoke(self, message: MessageRecord, callbacks: list[BaseCallbackHandler]) -> TurnOutcome:
        graph_input = self._fresh_input(message)
        known_values: Any = None
        if message.attempts > 1:
            snapshot = await self._own_snapshot(message)
            if snapshot is not None:
                paused = await self._paused(message, snapshot)
                if paused is not None:
                    # The graph had already paused; only the outcome was not recorded.
                    return paused
                # Continue from the last completed step. An empty ``next`` does not mean finished: the
                # step's writes may be saved without the checkpoint after them (the chaos test caught
                # this), and LangGraph goes on from there; a graph that had finished runs nothing, and
                # then its state is the outcome.
                graph_input = None
                known_values = snapshot.values
        config: dict[str, Any] = {
            **_thread(message.session_id),
            "metadata": {
                CHECKPOINT_TAG: message.message_id,
                USER_TAG: message.user_id,
                GRAPH_TAG: self._program.name,
            },
            "callbacks": callbacks,
        }
        return await self._stream(graph_input, config, message, known_values=known_values)

    async def _stream(
        self,
        graph_input: Any,
        config: dict[str, Any],
        message: MessageRecord,
        *,
        known_values: Any = None,
    ) -> TurnOutcome:
        values: Any = known_values
        interrupts: dict[str, Interrupt] = {}
        breakpoint_hit = False
        async for raw in self._graph.astream(
            graph_input,
            cast("RunnableConfig", config),
            stream_mode=["updates", "values"],
            durability=self._policy.durability,
            interrupt_before=list(self._policy.interrupt_before) or None,
            interrupt_after=list(self._policy.interrupt_after) or None,
            subgraphs=self._program.has_subgraphs,
            version="v2",
        ):
            # The stream parts are TypedDicts of a union too wide to narrow usefully; read as dicts.
            part = cast("dict[str, Any]", raw)
            kind = part["type"]
            namespace = part.get("ns") or ()
            if namespace:
                # A subgraph's step: say which node ran inside which agent. Its state and its
                # interrupts reach the root graph's own parts as well; only those count.
                if kind == "updates" and isinstance(part["data"], dict):
                    path = [segment.split(":", 1)[0] for segment in namespace]
                    for node in part["data"]:
                        if not node.startswith("__"):
                            self._events.publish(
                                message.message_id, "update", {"node": node, "namespace": path}
                            )
                continue
            if kind == "values":
                values = part["data"]
                for pending in part.get("interrupts") or ():
                    interrupts.setdefault(pending.id, pending)
            elif kind == "updates":
                data = part["data"]
                if isinstance(data, dict):
                    if "__interrupt__" in data:
                        # Parallel nodes each report their own; a static breakpoint reports none.
                        for pending in data["__interrupt__"]:
                            interrupts.setdefault(pending.id, pending)
                        breakpoint_hit = breakpoint_hit or not data["__interrupt__"]
                    for node in data:
                        if not node.startswith("__"):
                            self._events.publish(
                                message.message_id, "update", {"node": node, "namespace": []}
                            )
        if breakpoint_hit and not interrupts:
            snapshot = await self._graph.aget_state(_thread(message.session_id))
            checkpoint_id = str(snapshot.config["configurable"]["checkpoint_id"])
            return TurnOutcome(
                status=MessageStatus.INTERRUPTED, interrupt=_breakpoint(checkpoint_id, snapshot.next)
            )
        return _outcome_of_state(self._program, values, list(interrupts.values()), message.message_id)

    async def _rollback(self, message: MessageRecord) -> list[dict[str, Any]] | None:
        """Put the session's graph state back where this turn found it (see the module docstring).

        A failed resume also asks its questions again: LangGraph keeps a resume value with the paused
        checkpoint, so retrying from that checkpoint would replay the failed answer. Parley copies the
        checkpoint without its pending writes instead and runs the graph up to its interrupts again;
        their new ids are returned, to be pending once more.
        """
        thread = _thread(message.session_id)
        latest = await self._checkpointer.aget_tuple(thread)
        if latest is None:
            return None
        tagged = latest.metadata.get(CHECKPOINT_TAG) == message.message_id
        if not tagged and message.kind is not MessageKind.RESUME:
            return None  # the turn wrote nothing
        before: CheckpointTuple | None = latest
        while before is not None and before.metadata.get(CHECKPOINT_TAG) == message.message_id:
            before = (
                await self._checkpointer.aget_tuple(before.parent_config) if before.parent_config else None
            )
        if before is None:
            await self._checkpointer.adelete_thread(message.session_id)
            return None
        metadata = {
            ROLLBACK_TAG: message.message_id,
            USER_TAG: message.user_id,
            GRAPH_TAG: self._program.name,
        }
        config = cast("RunnableConfig", {**before.config, "metadata": metadata})
        await self._graph.aupdate_state(config, None, as_node=_copy_as(self._program))
        if message.kind is not MessageKind.RESUME:
            return None
        outcome = await self._stream(None, {**thread, "metadata": metadata}, message)
        return outcome.interrupt


class TurnExecutor:
    """Runs the turns of every hosted program: each message by its session's graph (``GraphTurns``)."""

    def __init__(
        self,
        *,
        programs: ProgramSet,
        checkpointer: BaseCheckpointSaver[Any],
        store: Store,
        events: EventPublisher,
        policy: TurnPolicy,
        telemetry: TurnTelemetry = NO_TELEMETRY,
    ) -> None:
        self._store = store
        self._programs = programs
        self._cancel_requests: set[str] = set()
        self._ended: list[Callable[[str], None]] = []
        self._turns = {
            program.name: GraphTurns(
                program=program,
                checkpointer=checkpointer,
                store=store,
                events=events,
                policy=_for_program(policy, program),
                cancel_requests=self._cancel_requests,
                ended=self._ended,
                telemetry=telemetry,
            )
            for program in programs
        }

    @property
    def programs(self) -> ProgramSet:
        return self._programs

    def on_turn_end(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(session_id)`` after each message's turn ended (for checkpoint retention)."""
        self._ended.append(callback)

    def request_cancel(self, message_id: str) -> None:
        """Mark a message cancelled: a turn that has not started will not; one running is cancelled by
        the runner, and this mark tells that cancellation from a shutdown."""
        self._cancel_requests.add(message_id)

    async def run(self, message: MessageRecord) -> MessageRecord | None:
        """Run ``message``'s turn to a terminal status with its session's graph; None if it was already
        terminal. A session bound to a graph this service no longer hosts fails its message, not the
        process: the graph may come back with the next deploy."""
        name = await self._store.session_graph(session_id=message.session_id)
        program = self._programs.find(name)
        if program is None:
            refusal = replace(
                _failed(
                    "graph_unavailable",
                    f"The session belongs to the graph {name!r}, which this service no longer hosts.",
                ),
                ran=False,
            )
            return await self._turns[self._programs.default.name].run(message, refuse=refusal)
        return await self._turns[program.name].run(message)


def _for_program(policy: TurnPolicy, program: Program) -> TurnPolicy:
    """The static breakpoints that name this program's nodes (``PARLEY_INTERRUPT_*`` apply to every graph
    that has such a node)."""
    before, after = program.breakpoints(policy.interrupt_before, policy.interrupt_after)
    return replace(policy, interrupt_before=before, interrupt_after=after)
