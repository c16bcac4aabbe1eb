"""One callback handler per turn: it publishes reply tokens as the model streams them (or holds them
until the turn completes, for a draft that may go to an operator's review: ``HOLD_TAG``), and sums up what
the turn's model calls cost (latency, time to first token, tokens, errors) for the message's ``usage``.

Why a callback handler rather than LangGraph's ``stream_mode="messages"``: both see the same tokens, and the
usage figures need a handler anyway. It is a synchronous handler run inline on the event loop and ignores
chain events: measured on the bundled assistant, an async handler that heard every node cost a turn about
0.9 ms; this one costs about 0.25 ms (0.45 ms streaming). ``StreamingTurnObserver`` has the methods of
LangChain's streaming-handler protocol, so models are called in streaming mode while it is attached.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk, LLMResult

T = TypeVar("T")

NOSTREAM_TAG = "nostream"
"""Model calls with this tag (the summariser's) are bookkeeping: their tokens are not the reply."""
HOLD_TAG = "parley:held-for-review"
"""Model calls with this tag write a draft an operator may still have to review (the assistant's
``agent``): their tokens are held back, published only when the turn completes and dropped when it ends
any other way — paused for review above all (see ``TurnObserver.settle``). A graph tags such a model with
``model.with_config(tags=[HOLD_TAG])``."""

Speaker = tuple[str | None, tuple[str, ...]]
"""Who emits a token: the graph node, and the subgraph nodes it runs inside (``()`` at the root) — which
agent is speaking, in a graph of agents built as subgraphs."""
TokenSink = Callable[[str, Speaker], None]
"""Receives ``(text, speaker)`` for each reply token."""


def namespace_of(checkpoint_ns: str | None) -> tuple[str, ...]:
    """The subgraph nodes a LangGraph checkpoint namespace (``agent:<task id>|model:<task id>``) runs
    inside: every segment but the node's own, each without its task id."""
    segments = [segment.split(":", 1)[0] for segment in (checkpoint_ns or "").split("|") if segment]
    return tuple(segments[:-1])


_NOBODY: Speaker = (None, ())


class TurnObserver(BaseCallbackHandler):
    """Usage in, and tokens out when the model streams (see the module docstring). One per message,
    across its attempts. Attached alone it does not make models stream; ``StreamingTurnObserver`` does."""

    # Only model events matter here; not being called for every node and tool of the graph halves what
    # the handler costs a turn (measured: bench/README.md).
    run_inline = True  # called on the event loop directly, not through an executor
    ignore_chain = True
    ignore_agent = True
    ignore_retriever = True
    ignore_custom_event = True

    def __init__(self, on_token: TokenSink | None = None) -> None:
        super().__init__()
        self.on_token = on_token
        self.calls = 0
        self.errors = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.model_seconds = 0.0
        self.first_token_seconds: float | None = None
        self.call_seconds: list[float] = []
        """Each finished model call's latency, in order (for the model latency histogram)."""
        self._started: dict[UUID, float] = {}
        self._nodes: dict[UUID, Speaker] = {}
        self._quiet: set[UUID] = set()
        self._holding: set[UUID] = set()
        self._held: list[tuple[UUID, str, Speaker]] = []
        self._streamed: dict[UUID, int] = {}

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.calls += 1
        self._started[run_id] = time.perf_counter()
        found = metadata or {}
        self._nodes[run_id] = (
            found.get("langgraph_node"),
            namespace_of(found.get("langgraph_checkpoint_ns")),
        )
        if tags and NOSTREAM_TAG in tags:
            self._quiet.add(run_id)
        elif tags and HOLD_TAG in tags:
            self._holding.add(run_id)

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if run_id not in self._started or not token or not isinstance(token, str):
            return
        count = self._streamed.get(run_id, 0)
        self._streamed[run_id] = count + 1
        if count == 0 and self.first_token_seconds is None:
            self.first_token_seconds = time.perf_counter() - self._started[run_id]
        if self.on_token is None or run_id in self._quiet:
            return
        if run_id in self._holding:
            self._held.append((run_id, token, self._nodes.get(run_id, _NOBODY)))
        else:
            self.on_token(token, self._nodes.get(run_id, _NOBODY))

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self._finish(run_id)
        streamed = self._streamed.pop(run_id, 0)
        reported = False
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
                if usage:
                    reported = True
                    self.input_tokens += int(usage.get("input_tokens", 0))
                    self.output_tokens += int(usage.get("output_tokens", 0))
        if not reported:
            # Some servers send no usage with a stream; the streamed chunks are then the best count.
            self.output_tokens += streamed

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.errors += 1
        self._finish(run_id)
        self._streamed.pop(run_id, None)
        # The call's output never became a message (a retry generates it again): its tokens go.
        self._held = [held for held in self._held if held[0] != run_id]

    def _finish(self, run_id: UUID) -> None:
        started = self._started.pop(run_id, None)
        if started is not None:
            elapsed = time.perf_counter() - started
            self.model_seconds += elapsed
            self.call_seconds.append(elapsed)
        self._nodes.pop(run_id, None)
        self._quiet.discard(run_id)
        self._holding.discard(run_id)

    def settle(self, *, publish: bool) -> None:
        """At the end of the turn: publish the held tokens (the turn completed, so no review is
        pending) or drop them (it paused, failed or was cancelled: the draft may be awaiting review)."""
        held, self._held = self._held, []
        if publish and self.on_token is not None:
            for _, text, node in held:
                self.on_token(text, node)

    def summary(self) -> dict[str, Any]:
        """The ``usage`` of the message record."""
        return {
            "model_calls": self.calls,
            "model_errors": self.errors,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "model_seconds": round(self.model_seconds, 4),
            "first_token_seconds": None
            if self.first_token_seconds is None
            else round(self.first_token_seconds, 4),
        }


class StreamingTurnObserver(TurnObserver):
    """A ``TurnObserver`` that has models called in streaming mode, so that tokens flow as generated."""

    # LangChain's streaming-handler protocol (checked with isinstance): pass the output through untouched.
    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        return output

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        return output
