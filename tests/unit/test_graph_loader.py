from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from parley.core.context import GraphContext
from parley.core.errors import ConfigurationError
from parley.core.graph_loader import load_graph
from parley.models.scripted import ScriptedChatModel
from parley.settings import Settings


@pytest.fixture
def context(tmp_path: Path) -> GraphContext:
    return GraphContext(model=ScriptedChatModel(), settings=Settings(data_dir=tmp_path))


@pytest.mark.parametrize(
    "reference",
    [
        "tests.graphs.counting:graph",
        "tests.graphs.counting:compiled",
        "parley.bots.assistant:build_graph",
    ],
)
def test_loads_state_graphs_compiled_graphs_and_factories(reference: str, context: GraphContext) -> None:
    saver = InMemorySaver()
    graph = load_graph(reference, context=context, checkpointer=saver)
    assert graph.checkpointer is saver
    assert "messages" in graph.channels


def test_a_compiled_graph_is_copied_not_mutated(context: GraphContext) -> None:
    from tests.graphs import counting

    load_graph("tests.graphs.counting:compiled", context=context, checkpointer=InMemorySaver())
    assert counting.compiled.checkpointer is None


def test_factory_without_arguments(context: GraphContext, monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.graphs.counting as counting

    calls: list[Any] = []

    def factory() -> Any:
        calls.append(1)
        return counting.graph

    monkeypatch.setattr(counting, "factory", factory, raising=False)
    load_graph("tests.graphs.counting:factory", context=context, checkpointer=InMemorySaver())
    assert calls == [1]


@pytest.mark.parametrize(
    ("reference", "needle"),
    [
        ("tests.graphs.nope:graph", "cannot import"),
        ("tests.graphs.counting:missing", "no attribute"),
        ("tests.graphs.counting:_SLEEP", "expected a StateGraph"),
        ("tests.graphs.counting:no_messages", "no 'messages' key"),
    ],
)
def test_bad_references_are_configuration_errors(reference: str, needle: str, context: GraphContext) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        load_graph(reference, context=context, checkpointer=InMemorySaver())
