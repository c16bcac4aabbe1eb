"""Load the graph ``PARLEY_GRAPH`` names and attach Parley's checkpointer to it."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from parley.core.context import GraphContext
from parley.core.errors import ConfigurationError


def _resolve(reference: str) -> Any:
    module_name, _, attr_path = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"PARLEY_GRAPH={reference!r}: cannot import {module_name}: {exc}") from exc
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(
                f"PARLEY_GRAPH={reference!r}: {module_name} has no attribute {attr_path!r}"
            ) from None
    return obj


def load_graph(
    reference: str, *, context: GraphContext, checkpointer: BaseCheckpointSaver[Any]
) -> Pregel[Any, Any, Any, Any]:
    """The compiled graph, with ``checkpointer`` attached, ready for ``astream``.

    ``reference`` names a ``StateGraph``, a compiled graph, or a factory returning either; a factory
    may take one argument, the ``GraphContext`` (the configured chat model and settings). A compiled
    graph is copied, not mutated, so its own checkpointer setting is left alone for its other users.
    """
    obj = _resolve(reference)
    if not isinstance(obj, StateGraph | Pregel) and callable(obj):
        params = [
            p
            for p in inspect.signature(obj).parameters.values()
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        try:
            obj = obj(context) if params else obj()
        except ConfigurationError:
            raise
        except Exception as exc:
            raise ConfigurationError(
                f"PARLEY_GRAPH={reference!r}: the factory raised {type(exc).__name__}: {exc}"
            ) from exc
    if isinstance(obj, StateGraph):
        compiled: Pregel[Any, Any, Any, Any] = obj.compile(checkpointer=checkpointer)
    elif isinstance(obj, Pregel):
        compiled = obj.copy(update={"checkpointer": checkpointer})
    else:
        raise ConfigurationError(
            f"PARLEY_GRAPH={reference!r} is a {type(obj).__name__}; expected a StateGraph, a "
            "compiled graph, or a function returning one."
        )
    if "messages" not in compiled.channels:
        raise ConfigurationError(
            f"PARLEY_GRAPH={reference!r}: the graph's state has no 'messages' key, which Parley "
            "needs to feed it the user's message and read the reply."
        )
    return compiled
