"""A deterministic chat model for tests, demos and benchmarks.

It is a real LangChain ``BaseChatModel``: LangGraph streams it, binds tools to it and records its usage
as it would any provider's. What it says comes, in order of precedence, from:

1. directives in the last user message, so that each request of an end-to-end test controls its own
   turn even when many run at once: ``[[sleep:0.5]]`` waits, ``[[fail]]`` raises
   ``ScriptedModelError`` (permanent), ``[[fail:timeout]]`` raises ``TimeoutError``,
   ``[[fail:rate_limit]]`` / ``[[fail:unavailable]]`` raise an error with HTTP status 429 / 503 (all three
   transient), ``[[flaky:N]]`` times out on the first N calls for that message and then answers,
   ``[[reply:text]]`` answers ``text``, ``[[pace:0.05]]`` streams its tokens that many seconds apart,
   ``[[clock:N]]`` answers N tokens, each the wall-clock time (``time.time()``, six decimals, then a
   space) at which it is emitted — so a client on the same machine can tell how long each took to reach
   it (bench/streams.py) — ``[[tool:name|{"json": "args"}]]`` (one or more) calls tools;
2. the next step of its script (text, tool calls, a delay, an exception), consumed in order;
3. by default, ``Echo: <the last user message>`` — deterministic, and bounded in length; after tool
   results, ``Tool results: <name>: <result>; …``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

_ERROR_KINDS = ("error", "timeout", "rate_limit", "unavailable")
_DIRECTIVE = re.compile(r"\[\[(\w+)(?::([^\]]*))?\]\]")
ECHO_PREFIX = "Echo: "


class ScriptedModelError(RuntimeError):
    """The failure a script or a ``[[fail]]`` directive asks for."""


class ScriptedHTTPError(ScriptedModelError):
    """A failure that looks like a provider's HTTP error answer (``status_code``)."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"scripted provider answered {status_code}")
        self.status_code = status_code


ErrorKind = Literal["error", "timeout", "rate_limit", "unavailable"]


class ScriptStep(BaseModel):
    """One scripted model call."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    delay: float = Field(default=0.0, ge=0)
    pace: float | None = Field(default=None, ge=0)
    """Seconds between streamed tokens of this call (the model's ``token_delay`` when None)."""
    clock: int | None = Field(default=None, ge=1)
    """Answer this many tokens, each the time it is emitted (see ``clock_token``), instead of ``text``."""
    error: ErrorKind | None = None


def load_script(path: Path) -> list[ScriptStep]:
    """Read a JSON list of steps (as ``ScriptStep`` fields) from a file."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError(f"{path}: a script is a JSON list of steps")
    return [ScriptStep.model_validate(item) for item in raw]


def _tool_call(directive: str, index: int) -> dict[str, Any]:
    name, _, raw_args = directive.partition("|")
    args = json.loads(raw_args) if raw_args.strip() else {}
    return {"name": name.strip(), "args": args, "id": f"call_{uuid.uuid4().hex[:8]}_{index}"}


def clock_token() -> str:
    """A clock token: the wall-clock time now, to the microsecond, and a space."""
    return f"{time.time():.6f} "


def _is_summary_prompt(messages: list[BaseMessage]) -> bool:
    from parley.bots.memory import SUMMARY_INSTRUCTIONS

    return (
        bool(messages)
        and isinstance(messages[0], SystemMessage)
        and messages[0].content == SUMMARY_INSTRUCTIONS
    )


def _text_of(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = [p if isinstance(p, str) else str(p.get("text", "")) for p in content]
    return "".join(parts)


class ScriptedChatModel(BaseChatModel):
    """Replays a script, obeys inline directives, otherwise echoes — see the module docstring."""

    script: list[ScriptStep] = Field(default_factory=list)
    max_echo_chars: int = 500
    token_delay: float = 0.0
    """Seconds between streamed tokens, to make streaming observable."""

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: int = PrivateAttr(default=0)
    _flaky: dict[str, int] = PrivateAttr(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "parley-scripted"

    @property
    def calls(self) -> int:
        """How many times the model has been called (all sessions together)."""
        return self._calls

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Accept tools as a tool-calling provider would; which are called is up to the script."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, **kwargs)

    # -- deciding what to say -------------------------------------------------------------------

    def _next_step(self, messages: list[BaseMessage]) -> ScriptStep:
        with self._lock:
            self._calls += 1
            scripted = self.script.pop(0) if self.script else None
        if scripted is None and messages and isinstance(messages[-1], ToolMessage):
            # After tools ran, say what they returned: deterministic, and enough to test tool flows.
            results: list[str] = []
            for message in reversed(messages):
                if not isinstance(message, ToolMessage):
                    break
                results.insert(0, f"{message.name}: {_text_of(message)}")
            return ScriptStep(text="Tool results: " + "; ".join(results))
        if scripted is None and _is_summary_prompt(messages):
            # The summariser quotes old messages, directives included: echo them, never obey them.
            return ScriptStep(text=self._echo(_text_of(messages[-1])))
        last_user = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        text = _text_of(last_user) if last_user is not None else ""
        directives = dict((name.lower(), arg or "") for name, arg in _DIRECTIVE.findall(text))
        if directives:
            step = ScriptStep(delay=float(directives.get("sleep") or 0))
            if "pace" in directives:
                step.pace = float(directives["pace"] or 0)
            if "fail" in directives:
                kind = directives["fail"] or "error"
                step.error = cast("ErrorKind", kind) if kind in _ERROR_KINDS else "error"
            if "flaky" in directives:
                with self._lock:
                    failures = self._flaky.get(text, 0)
                    if failures < int(directives["flaky"] or 1):
                        self._flaky[text] = failures + 1
                        step.error = "timeout"
            if "reply" in directives:
                step.text = directives["reply"]
            if "clock" in directives:
                step.clock = max(1, int(directives["clock"] or 1))
            calls = [arg for name, arg in _DIRECTIVE.findall(text) if name.lower() == "tool"]
            if calls and not step.error:
                step.tool_calls = [_tool_call(arg, index) for index, arg in enumerate(calls)]
                step.text = step.text or ""
                return step
            if step.error or step.text is not None or step.clock:
                return step
            if scripted is None:
                step.text = self._echo(_DIRECTIVE.sub("", text).strip())
                return step
            scripted = scripted.model_copy(update={"delay": scripted.delay + step.delay})
        if scripted is not None:
            return scripted
        return ScriptStep(text=self._echo(text))

    def _echo(self, text: str) -> str:
        return ECHO_PREFIX + text[: self.max_echo_chars]

    @staticmethod
    def _raise_for(step: ScriptStep) -> None:
        if step.error == "timeout":
            raise TimeoutError("scripted model timed out")
        if step.error == "rate_limit":
            raise ScriptedHTTPError(429)
        if step.error == "unavailable":
            raise ScriptedHTTPError(503)
        if step.error == "error":
            raise ScriptedModelError("scripted model failure")

    @staticmethod
    def _message(step: ScriptStep, messages: list[BaseMessage]) -> AIMessage:
        """The whole answer (a clock step's tokens all tell the time of this call)."""
        text = "".join(clock_token() for _ in range(step.clock)) if step.clock else step.text or ""
        prompt_words = sum(len(_text_of(m).split()) for m in messages)
        usage = UsageMetadata(
            input_tokens=prompt_words,
            output_tokens=len(text.split()),
            total_tokens=prompt_words + len(text.split()),
        )
        tool_calls = [
            {
                "name": call["name"],
                "args": call.get("args", {}),
                "id": call.get("id") or f"call_{index}",
                "type": "tool_call",
            }
            for index, call in enumerate(step.tool_calls)
        ]
        return AIMessage(content=text, tool_calls=tool_calls, usage_metadata=usage)

    # -- LangChain hooks ------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        step = self._next_step(messages)
        if step.delay:
            time.sleep(step.delay)
        self._raise_for(step)
        return ChatResult(generations=[ChatGeneration(message=self._message(step, messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        step = self._next_step(messages)
        if step.delay:
            await asyncio.sleep(step.delay)
        self._raise_for(step)
        return ChatResult(generations=[ChatGeneration(message=self._message(step, messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        step = self._next_step(messages)
        if step.delay:
            time.sleep(step.delay)
        self._raise_for(step)
        pace = self.token_delay if step.pace is None else step.pace
        tokens = self._tokens(step)
        for index, token in enumerate(tokens):
            if pace:
                time.sleep(pace)
            # A clock token's text is taken only now, after the pause: the moment it is emitted.
            text = clock_token() if token is None else token
            chunk = self._chunk(step, messages, text, last=index == len(tokens) - 1)
            if run_manager is not None:
                run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        step = self._next_step(messages)
        if step.delay:
            await asyncio.sleep(step.delay)
        self._raise_for(step)
        pace = self.token_delay if step.pace is None else step.pace
        tokens = self._tokens(step)
        for index, token in enumerate(tokens):
            if pace:
                await asyncio.sleep(pace)
            text = clock_token() if token is None else token
            chunk = self._chunk(step, messages, text, last=index == len(tokens) - 1)
            if run_manager is not None:
                await run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk

    @staticmethod
    def _tokens(step: ScriptStep) -> list[str | None]:
        """The reply's tokens, in order: its words, or (None) as many clock tokens as it asks for."""
        if step.clock:
            return [None] * step.clock
        return list(re.findall(r"\S+\s*|\s+", step.text or "")) or [""]

    def _chunk(
        self, step: ScriptStep, messages: list[BaseMessage], text: str, *, last: bool
    ) -> ChatGenerationChunk:
        """One streamed token; the last carries the tool calls and the usage."""
        if not last:
            return ChatGenerationChunk(message=AIMessageChunk(content=text))
        full = self._message(step, messages)  # its tool calls and usage (a word per clock token)
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=text,
                tool_call_chunks=[
                    {
                        "name": c["name"],
                        "args": json.dumps(c["args"]),
                        "id": c["id"],
                        "index": i,
                        "type": "tool_call_chunk",
                    }
                    for i, c in enumerate(full.tool_calls)
                ],
                usage_metadata=full.usage_metadata,
                chunk_position="last",
            )
        )
