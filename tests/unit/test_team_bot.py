"""The bundled team example (``parley.bots.team``): a supervisor hands off to two agent subgraphs, and the
refunds agent asks the user to confirm from inside its subgraph. Driven by the scripted model's directives,
as the end-to-end tests drive it through the server."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command, Interrupt

from parley.bots.team import ORDERS, REFUNDS, build_graph, build_team_graph
from parley.core.context import GraphContext
from parley.core.graph_loader import load_program
from parley.core.ports import Store
from parley.core.usage import namespace_of
from parley.models.scripted import ScriptedChatModel, ScriptStep
from parley.settings import Settings

TO_ORDERS = '[[tool:transfer_to_orders|{"order_id": "ord_1"}]] where is my order?'
TO_REFUNDS = '[[tool:transfer_to_refunds|{"order_id": "ord_1", "reason": "broken"}]] my mug arrived broken'


@dataclass
class Turn:
    """What one ``astream`` of the graph showed."""

    updates: list[tuple[tuple[str, ...], dict[str, Any]]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    """The root graph's last values (a subgraph's reach it only when the subgraph ends)."""
    inner: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each subgraph's last values, by agent."""

    def nodes(self, agent: str | None = None) -> list[str]:
        """The nodes that ran at the root (None), or inside ``agent``'s subgraph."""
        return [
            node
            for ns, data in self.updates
            if (not ns if agent is None else bool(ns) and ns[0].startswith(f"{agent}:"))
            for node in data
        ]

    def interrupts_in(self, agent: str) -> list[Interrupt]:
        return [
            pending
            for ns, data in self.updates
            if ns and ns[0].startswith(f"{agent}:")
            for pending in data.get("__interrupt__", ())
        ]

    @property
    def reply(self) -> str:
        last = self.values["messages"][-1]
        assert isinstance(last, AIMessage)
        assert not last.tool_calls
        return str(last.text)


class Team:
    """The compiled team graph over an in-memory checkpointer."""

    def __init__(self, tmp_path: Path, model: ScriptedChatModel | None = None, store: Any = None) -> None:
        self.model = model or ScriptedChatModel()
        ctx = GraphContext(
            model=self.model, settings=Settings(data_dir=tmp_path), store=cast("Store | None", store)
        )
        self.graph = build_team_graph(ctx).compile(checkpointer=InMemorySaver())

    async def run(self, graph_input: Any, thread: str = "s1", callbacks: list[Any] | None = None) -> Turn:
        turn = Turn()
        config: Any = {"configurable": {"thread_id": thread}, "callbacks": callbacks or []}
        async for raw in self.graph.astream(
            graph_input, config, subgraphs=True, stream_mode=["updates", "values"], version="v2"
        ):
            part = cast("dict[str, Any]", raw)
            if part["type"] == "updates" and isinstance(part["data"], dict):
                turn.updates.append((tuple(part["ns"]), part["data"]))
            elif part["type"] == "values" and not part["ns"]:
                turn.values = part["data"]
            elif part["type"] == "values":
                turn.inner[part["ns"][0].split(":", 1)[0]] = part["data"]
        return turn

    async def say(self, text: str, thread: str = "s1", callbacks: list[Any] | None = None) -> Turn:
        return await self.run({"messages": [HumanMessage(text)]}, thread, callbacks)

    async def state(self, thread: str = "s1") -> Any:
        return await self.graph.aget_state({"configurable": {"thread_id": thread}}, subgraphs=True)

    async def answer(self, pending: Interrupt, value: Any, thread: str = "s1") -> Turn:
        return await self.run(Command(resume={pending.id: value}), thread)


def assert_every_tool_call_answered(messages: list[BaseMessage]) -> None:
    """What real providers require of a history: each tool call has its result."""
    called = [str(c["id"]) for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    answered = [m.tool_call_id for m in messages if isinstance(m, ToolMessage)]
    assert sorted(called) == sorted(answered)


async def test_a_plain_message_gets_the_supervisors_own_reply(tmp_path: Path) -> None:
    team = Team(tmp_path)
    turn = await team.say("hello there")
    assert turn.reply == "Echo: hello there"
    assert turn.nodes() == ["supervisor"]
    assert turn.values["active_agent"] == ""
    assert team.model.calls == 1


async def test_a_transfer_to_orders_runs_the_orders_subgraph(tmp_path: Path) -> None:
    team = Team(tmp_path)
    turn = await team.say(TO_ORDERS)
    assert turn.nodes() == ["supervisor", ORDERS]
    assert turn.nodes(ORDERS) == ["agent"]
    assert turn.nodes(REFUNDS) == []
    assert turn.values["active_agent"] == ORDERS
    # The agent's model reads the handoff's result last, and the scripted model says what it read.
    assert turn.reply == "Tool results: transfer_to_orders: Transferred to the orders agent."
    assert_every_tool_call_answered(turn.values["messages"])


async def test_a_refund_pauses_inside_the_refunds_subgraph_until_approved(tmp_path: Path) -> None:
    team = Team(tmp_path)
    turn = await team.say(TO_REFUNDS)
    assert turn.nodes() == ["supervisor", "__interrupt__"]
    assert turn.nodes(REFUNDS) == ["propose", "__interrupt__"]
    (pending,) = turn.interrupts_in(REFUNDS)
    assert pending.value == {
        "kind": "confirm",
        "action": "issue_refund",
        "args": {"order_id": "ord_1"},
        "tool_call_id": pending.value["tool_call_id"],
        "question": "Refund the full amount on order ord_1?",
    }
    # The refund proposed as the agent's tool call is in the subgraph's state; the parent's gets it when
    # the subgraph ends, so while paused its last message is the handoff's result (and there is no reply).
    paused = turn.inner[REFUNDS]["messages"][-1]
    assert isinstance(paused, AIMessage)
    assert paused.tool_calls[0]["id"] == pending.value["tool_call_id"]
    assert isinstance(turn.values["messages"][-1], ToolMessage)
    snapshot = await team.state()
    assert snapshot.next == (REFUNDS,)
    assert snapshot.interrupts == (pending,)

    done = await team.answer(pending, {"decision": "approve"})
    assert done.nodes(REFUNDS) == ["confirm", "agent"]
    assert done.nodes() == [REFUNDS]
    assert done.reply == "Tool results: issue_refund: Refund issued: the full amount on order ord_1."
    assert_every_tool_call_answered(done.values["messages"])
    assert (await team.state()).next == ()


async def test_a_rejected_refund_does_nothing(tmp_path: Path) -> None:
    team = Team(tmp_path)
    (pending,) = (await team.say(TO_REFUNDS)).interrupts_in(REFUNDS)
    done = await team.answer(pending, {"decision": "reject", "reason": "changed my mind"})
    assert done.reply == (
        "Tool results: issue_refund: No refund was issued for order ord_1: the user declined (changed my mind)."
    )


async def test_a_plain_word_answers_and_an_edit_changes_the_refund(tmp_path: Path) -> None:
    team = Team(tmp_path)
    (pending,) = (await team.say(TO_REFUNDS, thread="no")).interrupts_in(REFUNDS)
    done = await team.answer(pending, "no", thread="no")
    assert (
        done.reply == "Tool results: issue_refund: No refund was issued for order ord_1: the user declined."
    )

    (pending,) = (await team.say(TO_REFUNDS, thread="edit")).interrupts_in(REFUNDS)
    done = await team.answer(pending, {"decision": "edit", "args": {"amount": 4.5}}, thread="edit")
    assert done.reply == "Tool results: issue_refund: Refund issued: $4.50 on order ord_1."


async def test_an_unreadable_answer_asks_again(tmp_path: Path) -> None:
    team = Team(tmp_path)
    amount = '[[tool:transfer_to_refunds|{"order_id": "ord_2", "amount": 5}]] refund 5 dollars'
    (pending,) = (await team.say(amount)).interrupts_in(REFUNDS)
    assert pending.value["question"] == "Refund $5.00 on order ord_2?"
    again = await team.answer(pending, {"decision": "maybe"})
    (asked,) = again.interrupts_in(REFUNDS)
    assert asked.value["args"] == {"order_id": "ord_2", "amount": 5.0}
    assert "error" in asked.value
    done = await team.answer(asked, {"decision": "approve"})
    assert done.reply == "Tool results: issue_refund: Refund issued: $5.00 on order ord_2."


async def test_without_an_order_id_the_refunds_agent_asks_its_own_model(tmp_path: Path) -> None:
    # Unscripted: the agent's model answers the handoff (a real one would ask for the order id).
    team = Team(tmp_path)
    turn = await team.say('[[tool:transfer_to_refunds|{"reason": "broken"}]] refund please')
    assert turn.nodes(REFUNDS) == ["agent"]
    assert turn.reply == "Tool results: transfer_to_refunds: Transferred to the refunds agent."

    # Scripted as a real model would act: the refunds agent's model calls issue_refund itself.
    scripted = ScriptedChatModel(
        script=[
            ScriptStep(tool_calls=[{"name": "transfer_to_refunds", "args": {}, "id": "t1"}]),
            ScriptStep(tool_calls=[{"name": "issue_refund", "args": {"order_id": "ord_9"}, "id": "r1"}]),
        ]
    )
    team = Team(tmp_path, model=scripted)
    turn = await team.say("please refund ord_9")
    assert turn.nodes(REFUNDS) == ["agent", "__interrupt__"]
    (pending,) = turn.interrupts_in(REFUNDS)
    assert pending.value["tool_call_id"] == "r1"
    done = await team.answer(pending, {"decision": "approve"})
    assert done.reply == "Tool results: issue_refund: Refund issued: the full amount on order ord_9."


async def test_tool_calls_nobody_owns_are_answered_not_followed(tmp_path: Path) -> None:
    scripted = ScriptedChatModel(
        script=[
            ScriptStep(tool_calls=[{"name": "transfer_to_orders", "args": {}, "id": "t1"}]),
            ScriptStep(tool_calls=[{"name": "transfer_to_refunds", "args": {"order_id": "x"}, "id": "t2"}]),
        ]
    )
    team = Team(tmp_path, model=scripted)
    turn = await team.say("where is my order?")
    assert turn.nodes(ORDERS) == ["agent", "tools", "agent"]
    assert turn.nodes(REFUNDS) == []
    error = json.loads(turn.values["messages"][-2].text)
    assert error == {
        "ok": False,
        "error": "transfer_to_refunds is not available to the orders agent; answer the user.",
    }
    assert_every_tool_call_answered(turn.values["messages"])

    team = Team(
        tmp_path, model=ScriptedChatModel(script=[ScriptStep(tool_calls=[{"name": "bogus", "id": "b"}])])
    )
    turn = await team.say("hi")
    assert turn.nodes() == ["supervisor", "supervisor"]
    assert turn.reply.startswith("Tool results: bogus: There is no tool 'bogus'")


class ModelCalls(AsyncCallbackHandler):
    """Where each model call ran, as Parley's turn observer reads it from the callback metadata."""

    def __init__(self) -> None:
        self.speakers: list[tuple[str | None, tuple[str, ...]]] = []

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        found = metadata or {}
        self.speakers.append(
            (found.get("langgraph_node"), namespace_of(found.get("langgraph_checkpoint_ns")))
        )


async def test_each_agents_model_calls_run_in_its_namespace(tmp_path: Path) -> None:
    team = Team(tmp_path)
    calls = ModelCalls()
    await team.say(TO_ORDERS, callbacks=[calls])
    assert calls.speakers == [("supervisor", ()), ("agent", (ORDERS,))]


@dataclass
class FakeStore:
    """Only ``perform_once``: each key's first result, as the real stores keep it."""

    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: int = 0

    async def perform_once(
        self,
        *,
        key: str,
        session_id: str,
        name: str,
        args: dict[str, Any],
        effect: Callable[[Any], Awaitable[dict[str, Any]]],
        message_id: str | None = None,
        acts: bool = True,
    ) -> dict[str, Any]:
        if key not in self.done:
            self.runs += 1
            self.done[key] = await effect(None)
        return self.done[key]


async def test_with_a_store_an_approved_refund_is_recorded_once(tmp_path: Path) -> None:
    store = FakeStore()
    team = Team(tmp_path, store=store)
    (pending,) = (await team.say(TO_REFUNDS)).interrupts_in(REFUNDS)
    assert store.runs == 0
    await team.answer(pending, {"decision": "approve"})
    assert store.runs == 1
    assert list(store.done.values()) == [{"ok": True, "refunded": True, "order_id": "ord_1"}]


async def test_parley_hosts_it_with_its_confirm_interrupts(tmp_path: Path) -> None:
    ctx = GraphContext(model=ScriptedChatModel(), settings=Settings(data_dir=tmp_path))
    hosted = build_graph(ctx)
    assert hosted.interrupts == ("confirm",)
    assert hosted.description
    program = load_program("team", "parley.bots.team:build_graph", context=ctx, checkpointer=InMemorySaver())
    assert program.kind == "graph"
    assert program.adapter.input_kind == "messages"


@pytest.mark.parametrize("name", ["transfer_to_orders", "transfer_to_refunds"])
def test_the_handoff_tools_describe_themselves(name: str) -> None:
    from parley.bots import team

    handoff = getattr(team, name)
    assert handoff.name == name
    assert len(handoff.description) > 40
