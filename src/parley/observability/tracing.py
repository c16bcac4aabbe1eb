"""OpenTelemetry traces: a span per HTTP request, per turn, per graph node and per model call.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set: then a
``TracerProvider`` of this process's own sends batches over OTLP/HTTP, configured by the standard
``OTEL_*`` variables (service name, headers, timeout, sampler). Off, ``Tracing.enabled`` is False and
every hot path checks that flag before doing anything: no tracer, no span objects, no callback handler.

Parentage: a request span continues an incoming W3C ``traceparent``. A turn's span is a child of the
request that accepted its message when that request ran in this process (the router hands the
request's context over by message id, ``accepted``); otherwise — a turn run by a ``parley worker``, or
recovered after a restart — it starts a trace of its own, carrying the message and session ids as
attributes to correlate by. Node spans are children of the turn; a model call's span is a child of the
node it ran in.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import AsyncExitStack, ExitStack
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from parley import __version__

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_HANDOFF_LIMIT = 10_000
"""Request contexts waiting for their turn to start; past this (turns not starting), the oldest go."""
_HIDDEN_TAG = "langsmith:hidden"


def exporter_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces to be exported (and does not disable the SDK)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(env.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


class Tracing:
    """This process's tracer, or none (see the module docstring)."""

    def __init__(self, provider: TracerProvider | None = None, *, owned: bool = False) -> None:
        self._provider = provider
        self._owned = owned
        self.enabled = provider is not None
        self._tracer: Tracer | None = None if provider is None else provider.get_tracer("parley", __version__)
        self._handoff: OrderedDict[str, Context] = OrderedDict()

    @classmethod
    def from_environment(cls) -> Tracing:
        """Export over OTLP/HTTP if ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; else off."""
        if not exporter_configured():
            return cls()
        # Imported only when used: the exporter pulls in protobuf and an HTTP client.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, which win over this name.
        resource = Resource.create({"service.name": "parley", "service.version": __version__})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider, owned=True)

    @classmethod
    def opened(cls, stack: ExitStack | AsyncExitStack, provider: TracerProvider | None = None) -> Tracing:
        """``provider``'s tracing (tests), or what the environment asks for; shut down when ``stack``
        closes."""
        tracing = cls(provider) if provider is not None else cls.from_environment()
        stack.callback(tracing.shutdown)
        return tracing

    @property
    def tracer(self) -> Tracer:
        """The tracer; only when ``enabled``."""
        assert self._tracer is not None
        return self._tracer

    def accepted(self, message_id: str) -> None:
        """The current request accepted ``message_id``: its turn's span, if it runs in this process, is a
        child of the request's."""
        if not self.enabled:
            return
        current = otel_context.get_current()
        if not trace.get_current_span(current).get_span_context().is_valid:
            return
        self._handoff[message_id] = current
        if len(self._handoff) > _HANDOFF_LIMIT:
            self._handoff.popitem(last=False)

    def start_turn(self, *, message_id: str, session_id: str, kind: str) -> Span:
        """The span of a turn (not current: the caller makes it so)."""
        parent = self._handoff.pop(message_id, None)
        return self.tracer.start_span(
            "turn",
            context=parent if parent is not None else Context(),
            attributes={
                "parley.message_id": message_id,
                "parley.session_id": session_id,
                "parley.kind": kind,
            },
        )

    def shutdown(self) -> None:
        """Send what is batched and stop (a provider this object built; one given to it is its owner's)."""
        if self._provider is not None and self._owned:
            self._provider.shutdown()


class GraphSpans(BaseCallbackHandler):
    """A span per graph node and per model call of one turn (attached only when tracing is on).

    LangChain reports every runnable with its parent's run id; a node's own run is the chain named as its
    ``langgraph_node`` metadata. Runs that are not spans are remembered with their parent, so that a model
    call deep inside a node finds the node's span."""

    run_inline = True
    ignore_agent = True
    ignore_retriever = True
    ignore_custom_event = True

    def __init__(self, tracer: Tracer, turn: Span) -> None:
        super().__init__()
        self._tracer = tracer
        self._turn = turn
        self._spans: dict[UUID, Span] = {}
        self._parents: dict[UUID, UUID | None] = {}

    def _parent_context(self, parent_run_id: UUID | None) -> Context:
        run = parent_run_id
        while run is not None:
            span = self._spans.get(run)
            if span is not None:
                return trace.set_span_in_context(span)
            run = self._parents.get(run)
        return trace.set_span_in_context(self._turn)

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        node = (metadata or {}).get("langgraph_node")
        if node is not None and kwargs.get("name") == node and not (tags and _HIDDEN_TAG in tags):
            self._spans[run_id] = self._tracer.start_span(
                f"node {node}",
                context=self._parent_context(parent_run_id),
                attributes={
                    "langgraph.node": str(node),
                    "langgraph.step": int((metadata or {}).get("langgraph_step", 0)),
                },
            )
        else:
            self._parents[run_id] = parent_run_id

    def _end(self, run_id: UUID, error: BaseException | None = None) -> None:
        self._parents.pop(run_id, None)
        span = self._spans.pop(run_id, None)
        if span is None:
            return
        if error is not None:
            # The class only: an error's text may quote what the model was sent.
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        # LangGraph's interrupt is raised through the node: a pause, not a failure.
        self._end(run_id, None if type(error).__name__ == "GraphInterrupt" else error)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_start(run_id, parent_run_id, metadata)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_start(run_id, parent_run_id, metadata)

    def _model_start(self, run_id: UUID, parent_run_id: UUID | None, metadata: dict[str, Any] | None) -> None:
        model = (metadata or {}).get("ls_model_name")
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat"}
        if model:
            attributes["gen_ai.request.model"] = str(model)
        self._spans[run_id] = self._tracer.start_span(
            f"chat {model}" if model else "chat",
            context=self._parent_context(parent_run_id),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.get(run_id)
        if span is not None:
            for generations in response.generations:
                for generation in generations:
                    usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
                    if usage:
                        span.set_attribute("gen_ai.usage.input_tokens", int(usage.get("input_tokens", 0)))
                        span.set_attribute("gen_ai.usage.output_tokens", int(usage.get("output_tokens", 0)))
        self._end(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)
