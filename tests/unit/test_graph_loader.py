from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from parley.core.context import GraphContext
from parley.core.errors import ConfigurationError, InvalidInput
from parley.core.graph_loader import load_program, load_programs
from parley.core.programs import text_of
from parley.models.scripted import ScriptedChatModel
from parley.settings import Settings


@pytest.fixture
def context(tmp_path: Path) -> GraphContext:
    return GraphContext(model=ScriptedChatModel(), settings=Settings(data_dir=tmp_path))


@pytest.mark.parametrize(
    ("reference", "kind", "input_kind"),
    [
        ("tests.graphs.counting:graph", "graph", "messages"),
        ("tests.graphs.counting:compiled", "graph", "messages"),
        ("parley.bots.assistant:build_graph", "graph", "messages"),
        ("tests.graphs.functional:bot", "functional", "messages"),
        ("tests.graphs.functional:sync_bot", "functional", "messages"),
        ("tests.graphs.functional:plain_hosted", "functional", "mapped"),
        ("tests.graphs.custom_state:qa", "graph", "mapped"),
    ],
)
def test_loads_every_kind_of_program(
    reference: str, kind: str, input_kind: str, context: GraphContext
) -> None:
    saver = InMemorySaver()
    program = load_program("p", reference, context=context, checkpointer=saver)
    assert program.graph.checkpointer is saver
    assert (program.kind, program.adapter.input_kind) == (kind, input_kind)


def test_a_compiled_graph_is_copied_not_mutated(context: GraphContext) -> None:
    from tests.graphs import counting, functional

    load_program("p", "tests.graphs.counting:compiled", context=context, checkpointer=InMemorySaver())
    load_program("f", "tests.graphs.functional:bot", context=context, checkpointer=InMemorySaver())
    assert counting.compiled.checkpointer is None
    assert functional.bot.checkpointer is None


def test_factory_without_arguments(context: GraphContext, monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.graphs.counting as counting

    calls: list[Any] = []

    def factory() -> Any:
        calls.append(1)
        return counting.graph

    monkeypatch.setattr(counting, "factory", factory, raising=False)
    load_program("p", "tests.graphs.counting:factory", context=context, checkpointer=InMemorySaver())
    assert calls == [1]


@pytest.mark.parametrize(
    ("reference", "needle"),
    [
        ("tests.graphs.nope:graph", "cannot import"),
        ("tests.graphs.counting:missing", "no attribute"),
        ("tests.graphs.counting:_SLEEP", "expected a StateGraph"),
        ("tests.graphs.counting:no_messages", "no 'messages' key"),
        ("tests.graphs.custom_state:unmapped", r"input and reply not given\): host it with parley\.hosting"),
        (
            "tests.graphs.custom_state:badly_mapped",
            "names the state key 'prompt'.*it has answer, asked, question",
        ),
    ],
)
def test_bad_references_are_configuration_errors(reference: str, needle: str, context: GraphContext) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        load_program("p", reference, context=context, checkpointer=InMemorySaver())


def test_several_programs_keep_their_order_and_names(context: GraphContext) -> None:
    programs = load_programs(
        [("qa", "tests.graphs.custom_state:qa"), ("fn", "tests.graphs.functional:bot")],
        context=context,
        checkpointer=InMemorySaver(),
    )
    assert programs.names() == ["qa", "fn"]
    assert programs.default.name == "qa"
    assert programs.find(None) is programs.default
    functional = programs.find("fn")
    assert functional is not None
    assert functional.kind == "functional"
    assert programs.by_reference("tests.graphs.functional:bot") is programs.find("fn")
    with pytest.raises(InvalidInput, match="No graph 'nope' here") as refused:
        programs.named("nope", loc=["body", "graph"])
    assert refused.value.loc == ["body", "graph"]


def test_settings_name_several_graphs_or_one(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).graph_references() == [
        ("default", "parley.bots.assistant:build_graph")
    ]
    several = Settings(
        data_dir=tmp_path, graphs="a=tests.graphs.counting:graph, b=tests.graphs.functional:bot"
    )
    assert several.graph_references() == [
        ("a", "tests.graphs.counting:graph"),
        ("b", "tests.graphs.functional:bot"),
    ]


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"graphs": "tests.graphs.counting:graph"}, "each entry is name="),
        ({"graphs": "A=tests.graphs.counting:graph"}, "each entry is name="),
        ({"graphs": "a=x:y,a=x:z"}, "given twice"),
        ({"graphs": "a=nocolon"}, "must be 'package.module:attribute'"),
        ({"graphs": "a=x:y", "graph": "x:y"}, "not both"),
    ],
)
def test_bad_graph_settings_are_refused(values: dict[str, str], needle: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=needle):
        Settings(data_dir=tmp_path, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        (AIMessage("a message"), "a message"),
        ([HumanMessage("q", id="m1"), AIMessage("listed")], "listed"),
        ({"messages": [HumanMessage("q", id="m1"), AIMessage("in a dict")]}, "in a dict"),
        ({"messages": [AIMessage("earlier"), HumanMessage("q", id="m1")]}, None),
        ({"other": 1}, None),
        (None, None),
        (42, None),
    ],
)
def test_the_reply_of_a_return_value(value: Any, expected: str | None) -> None:
    assert text_of(value, message_id="m1") == expected


@pytest.mark.parametrize(
    ("reference", "has_subgraphs"),
    [
        ("parley.bots.team:build_graph", True),
        ("tests.graphs.nested:graph", True),
        ("tests.graphs.counting:graph", False),
        ("tests.graphs.functional:bot", False),
    ],
)
def test_only_graphs_with_subgraphs_stream_them(
    reference: str, has_subgraphs: bool, context: GraphContext
) -> None:
    program = load_program("p", reference, context=context, checkpointer=InMemorySaver())
    assert program.has_subgraphs is has_subgraphs
