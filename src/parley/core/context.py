"""What Parley hands a graph factory named by ``PARLEY_GRAPH``."""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from parley.core.ports import Store
from parley.settings import Settings


@dataclass(frozen=True)
class GraphContext:
    """The configured chat model and settings, for a factory ``def build(ctx) -> StateGraph``; and the
    store, whose ``perform_once`` runs a side effect once per key (None: no actions available)."""

    model: BaseChatModel
    settings: Settings
    store: Store | None = None
