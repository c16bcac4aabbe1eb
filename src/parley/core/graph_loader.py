"""Load the graphs ``PARLEY_GRAPH`` / ``PARLEY_GRAPHS`` name, attach Parley's checkpointer, pick each one's
adapter (``core/programs.py``)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from parley.core.context import GraphContext
from parley.core.errors import ConfigurationError
from parley.core.programs import (
    Adapter,
    FunctionalAdapter,
    Hosted,
    MappedAdapter,
    MessagesAdapter,
    Program,
    ProgramKind,
    ProgramSet,
)

# LangGraph's channel of an entrypoint's ``previous`` value: only a Functional API program has it.
_PREVIOUS_CHANNEL = "__previous__"

_HOW_TO_MAP = (
    "host it with parley.hosting.host(graph, input=<state key or function of the text>, "
    "reply=<state key or function of the state>) next to the graph (docs/graphs.md)"
)


def _resolve(label: str, reference: str) -> Any:
    module_name, _, attr_path = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"{label}: cannot import {module_name}: {exc}") from exc
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(f"{label}: {module_name} has no attribute {attr_path!r}") from None
    return obj


def _built(label: str, obj: Any, context: GraphContext) -> Any:
    """``obj`` itself, or what it makes when it is a factory (taking the ``GraphContext`` or nothing)."""
    if isinstance(obj, StateGraph | Pregel | Hosted) or not callable(obj):
        return obj
    params = [
        p
        for p in inspect.signature(obj).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    try:
        return obj(context) if params else obj()
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(f"{label}: the factory raised {type(exc).__name__}: {exc}") from exc


def _compiled(label: str, graph: Any, checkpointer: BaseCheckpointSaver[Any]) -> Pregel[Any, Any, Any, Any]:
    if isinstance(graph, StateGraph):
        compiled: Pregel[Any, Any, Any, Any] = graph.compile(checkpointer=checkpointer)
        return compiled
    if isinstance(graph, Pregel):
        # Copied, not mutated: its own checkpointer setting is left alone for its other users.
        return graph.copy(update={"checkpointer": checkpointer})
    raise ConfigurationError(
        f"{label} is a {type(graph).__name__}; expected a StateGraph, a compiled graph, a Functional API "
        "@entrypoint, parley.hosting.host(...), or a function returning one."
    )


def _adapter(label: str, graph: Pregel[Any, Any, Any, Any], hosted: Hosted) -> tuple[Adapter, ProgramKind]:
    if _PREVIOUS_CHANNEL in graph.channels:
        return FunctionalAdapter(input=hosted.input, reply_from=hosted.reply), "functional"
    if "messages" in graph.channels:
        return MessagesAdapter(input=hosted.input, reply_from=hosted.reply), "graph"
    if hosted.input is None or hosted.reply is None:
        missing = " and ".join(k for k in ("input", "reply") if getattr(hosted, k) is None)
        raise ConfigurationError(
            f"{label}: the graph's state has no 'messages' key, so Parley needs to be told how the user's "
            f"text enters it and where the reply is ({missing} not given): {_HOW_TO_MAP}."
        )
    for key in (hosted.input, hosted.reply):
        if isinstance(key, str) and key not in graph.channels:
            raise ConfigurationError(
                f"{label}: the mapping names the state key {key!r}, which the graph's state does not have "
                f"(it has {', '.join(_state_keys(graph))})."
            )
    return MappedAdapter(input=hosted.input, reply_from=hosted.reply), "graph"


def _state_keys(graph: Pregel[Any, Any, Any, Any]) -> list[str]:
    # LangGraph's own channels start with '__' or name a branch ('branch:to:node').
    return sorted(c for c in graph.channels if not c.startswith("__") and ":" not in c)


def load_program(
    name: str, reference: str, *, context: GraphContext, checkpointer: BaseCheckpointSaver[Any]
) -> Program:
    """The program ``reference`` names, compiled with ``checkpointer``, ready for ``astream``.

    ``reference`` names a ``StateGraph``, a compiled graph, a Functional API entrypoint, a
    ``parley.hosting.host(...)`` of any of them, or a factory returning one; a factory may take one
    argument, the ``GraphContext`` (the configured chat model and settings). ``ConfigurationError`` says
    what is wrong with it.
    """
    label = f"graph {name!r} ({reference})"
    obj = _built(label, _resolve(label, reference), context)
    hosted = obj if isinstance(obj, Hosted) else Hosted(graph=obj)
    graph = _compiled(label, _built(label, hosted.graph, context), checkpointer)
    adapter, kind = _adapter(label, graph, hosted)
    return Program(
        name=name,
        reference=reference,
        graph=graph,
        adapter=adapter,
        kind=kind,
        interrupts=hosted.interrupts,
        description=hosted.description,
        has_subgraphs=any(True for _ in graph.get_subgraphs()),
    )


def load_programs(
    references: Sequence[tuple[str, str]], *, context: GraphContext, checkpointer: BaseCheckpointSaver[Any]
) -> ProgramSet:
    """Every program of the service, in order (the first is the default)."""
    return ProgramSet(
        tuple(
            load_program(name, reference, context=context, checkpointer=checkpointer)
            for name, reference in references
        )
    )
