"""What a turn's model calls cost: latency, time to first token, tokens, errors — stored on the message."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk, LLMResult


class UsageRecorder(AsyncCallbackHandler):
    """A LangChain callback handler that sums up one turn's model calls (all attempts together)."""

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.model_seconds = 0.0
        self.first_token_seconds: float | None = None
        self._started: dict[UUID, float] = {}
        self._first_seen: set[UUID] = set()
        self._streamed: dict[UUID, int] = {}

    async def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        self.calls += 1
        self._started[run_id] = time.perf_counter()

    async def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if run_id not in self._started or not token:
            return
        self._streamed[run_id] = self._streamed.get(run_id, 0) + 1
        if run_id in self._first_seen:
            return
        self._first_seen.add(run_id)
        if self.first_token_seconds is None:
            self.first_token_seconds = time.perf_counter() - self._started[run_id]

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        started = self._started.pop(run_id, None)
        if started is not None:
            self.model_seconds += time.perf_counter() - started
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

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.errors += 1
        started = self._started.pop(run_id, None)
        if started is not None:
            self.model_seconds += time.perf_counter() - started

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
