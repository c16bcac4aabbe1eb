"""A bundled multi-agent example: a supervisor hands each request to one of two agents, each a subgraph.

    START ─▶ supervisor ─┬─▶ orders  (subgraph: agent ⇄ tools) ─▶ END
                         ├─▶ refunds (subgraph: [propose] ─▶ confirm ─▶ agent ⇄ …) ─▶ END
                         └─▶ END (the supervisor answered itself)

- ``supervisor`` calls the model with two handoff tools, ``transfer_to_orders`` and
  ``transfer_to_refunds``. A transfer is answered at once with a ``ToolMessage`` (every tool call in the
  history has its result, as real providers require) and the turn goes on in that agent; without one, the
  supervisor's text is the reply.
- The agents are compiled state graphs added as nodes, so their model calls run in their own
  checkpoint namespace (``refunds:<task id>|agent:<task id>``): Parley tells from it which agent
  speaks. They share the ``messages`` key with the parent. An agent ends the turn (no return to the
  supervisor): each turn is one handoff at most, short and predictable.
- ``orders`` answers with the model, which may look an order up (``lookup_order``, read-only).
- ``refunds`` never refunds on the model's say-so: it pauses first (``interrupt`` of kind ``confirm``,
  the payload the assistant's actions use), and the user approves, rejects or edits the arguments. The
  order id comes from the transfer when the supervisor's model passed one — so a test drives the whole
  flow with one directive — and otherwise from the refunds agent's own model, which asks the user for it.

An agent answers any tool call it does not own with an error result and asks its model again, rather than
following it: a model may repeat a handoff it saw in the history, and the scripted model (which answers
tool results with ``Tool results: …``) then ends the turn deterministically.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import ToolCall
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool, tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt
from pydantic import BaseModel, Field, ValidationError

from parley.bots import shop
from parley.bots.tools import TOOLS, IssueRefundArgs, describe, parse_decision
from parley.core.context import GraphContext
from parley.core.ports import Store
from parley.hosting import Hosted, host

logger = logging.getLogger(__name__)

ORDERS = "orders"
REFUNDS = "refunds"

SUPERVISOR_PROMPT = (
    "You are the front desk of a small shop's customer support. For a question about one of the user's "
    "orders (its status, contents or delivery), call transfer_to_orders. When the user wants money back "
    "for an order, call transfer_to_refunds, with the order id if they gave one. Otherwise answer briefly "
    "yourself."
)
ORDERS_PROMPT = (
    "You are the orders agent of a small shop's customer support. Answer the user's question about their "
    "order in a few sentences. Look the order up with lookup_order when you know its id; ask for the id "
    "when you do not."
)
REFUNDS_PROMPT = (
    "You are the refunds agent of a small shop's customer support. Refunds are made with issue_refund, "
    "which asks the user to confirm first. If you do not know which order to refund, ask the user for its "
    "id (e.g. ord_1234abcd). Once a refund was issued or declined, tell the user what happened in one "
    "sentence."
)

_MAX_ASKS = 3
_ANSWER_HELP = (
    'Answer with {"decision": "approve"}, {"decision": "reject", "reason": …} or '
    '{"decision": "edit", "args": {"order_id": …, "amount": …}}.'
)


class TeamState(TypedDict):
    """The parent graph's state. ``messages`` is shared with both agents."""

    messages: Annotated[list[AnyMessage], add_messages]
    active_agent: str
    """The agent the supervisor handed the latest turn to; "" when it answered itself."""


class AgentState(TypedDict):
    """An agent's state: only the conversation, the key it shares with the parent."""

    messages: Annotated[list[AnyMessage], add_messages]


# -- the handoff tools ---------------------------------------------------------------------------------


class OrdersTransferArgs(BaseModel):
    question: str = Field(default="", description="The user's question, in a few words.")
    order_id: str | None = Field(default=None, description="The order it is about, if the user said.")


class RefundsTransferArgs(BaseModel):
    order_id: str | None = Field(default=None, description="The order to refund, if the user said.")
    amount: float | None = Field(default=None, gt=0, description="How much, if the user said.")
    reason: str = Field(default="", description="Why the user wants the refund, in a few words.")


@tool(args_schema=OrdersTransferArgs)
def transfer_to_orders(question: str = "", order_id: str | None = None) -> str:
    """Hand the conversation to the orders agent, for a question about one of the user's orders: its
    status, contents or delivery."""
    return transferred(ORDERS)


@tool(args_schema=RefundsTransferArgs)
def transfer_to_refunds(order_id: str | None = None, amount: float | None = None, reason: str = "") -> str:
    """Hand the conversation to the refunds agent, when the user wants money back for an order (it asks
    the user to confirm before refunding anything)."""
    return transferred(REFUNDS)


TRANSFERS: dict[str, str] = {transfer_to_orders.name: ORDERS, transfer_to_refunds.name: REFUNDS}
"""Each handoff tool's agent (the name of its node)."""

_LOOKUP_ORDER = next(t for t in TOOLS if t.name == "lookup_order")
_ISSUE_REFUND = next(t for t in TOOLS if t.name == "issue_refund")


def transferred(agent: str) -> str:
    """The result of a handoff: what the agent's model reads last when it starts."""
    return f"Transferred to the {agent} agent."


def refund_issued(args: dict[str, Any]) -> str:
    """The result of an approved refund."""
    amount = args.get("amount")
    what = f"${float(amount):.2f}" if amount is not None else "the full amount"
    return f"Refund issued: {what} on order {args.get('order_id', '?')}."


def refund_declined(args: dict[str, Any], reason: str | None) -> str:
    """The result of a rejected refund: nothing was done. A reason that is only a "no" is left out."""
    why = f" ({reason})" if reason and parse_decision(reason) is None else ""
    return f"No refund was issued for order {args.get('order_id', '?')}: the user declined{why}."


# -- helpers ---------------------------------------------------------------------------------------


ChatRunnable = Runnable[LanguageModelInput, BaseMessage]
"""A chat model, with its tools bound or not."""


def _bind(model: BaseChatModel, tools: Sequence[BaseTool]) -> ChatRunnable | None:
    """The model with ``tools``, or None when it has no tool calling."""
    try:
        return model.bind_tools(list(tools))
    except NotImplementedError:
        return None


def _this_turn(messages: Sequence[AnyMessage]) -> Sequence[AnyMessage]:
    """Everything after the user's latest message."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return messages[index + 1 :]
    return messages


def _last_call(messages: Sequence[AnyMessage], name: str) -> ToolCall | None:
    """The latest call of tool ``name`` in this turn."""
    for message in reversed(_this_turn(messages)):
        if isinstance(message, AIMessage):
            for call in message.tool_calls[::-1]:
                if call["name"] == name:
                    return call
    return None


def _refund_args(raw: dict[str, Any]) -> dict[str, Any] | None:
    """``issue_refund``'s arguments out of ``raw`` (a transfer's, an edit's), if they are valid."""
    picked = {key: raw[key] for key in ("order_id", "amount") if raw.get(key) is not None}
    try:
        return IssueRefundArgs.model_validate(picked).model_dump(exclude_none=True)
    except ValidationError:
        return None


def _not_here(call: ToolCall, agent: str) -> ToolMessage:
    """The answer to a tool call the agent does not own: the model is told, and nothing runs."""
    result = {"ok": False, "error": f"{call['name']} is not available to the {agent} agent; answer the user."}
    return ToolMessage(json.dumps(result), tool_call_id=str(call["id"]), name=call["name"])


def _calls_of(state: AgentState) -> tuple[AIMessage | None, list[ToolCall]]:
    last = state["messages"][-1] if state["messages"] else None
    if isinstance(last, AIMessage):
        return last, list(last.tool_calls)
    return None, []


# -- the agents --------------------------------------------------------------------------------------


def build_orders_agent(model: BaseChatModel, store: Store | None) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The orders agent: the model answers, looking orders up (read-only) when it asks to."""
    agent_model: ChatRunnable = _bind(model, [_LOOKUP_ORDER]) or model

    async def agent_node(state: AgentState) -> dict[str, Any]:
        reply = await agent_model.ainvoke([SystemMessage(ORDERS_PROMPT), *state["messages"]])
        return {"messages": [reply]}

    def route_agent(state: AgentState) -> str:
        return "tools" if _calls_of(state)[1] else END

    async def tools_node(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        request, calls = _calls_of(state)
        assert request is not None
        results: list[ToolMessage] = []
        for call in calls:
            if call["name"] != _LOOKUP_ORDER.name:
                results.append(_not_here(call, ORDERS))
                continue
            call_id = str(call["id"])
            if store is None:
                result: dict[str, Any] = {"ok": False, "error": "order records are not available here"}
            else:
                result = await shop.perform_tool(
                    store,
                    config,
                    request_id=request.id,
                    call_id=call_id,
                    name=call["name"],
                    args=dict(call["args"]),
                )
            results.append(ToolMessage(json.dumps(result), tool_call_id=call_id, name=call["name"]))
        return {"messages": results}

    builder: StateGraph[AgentState, Any, Any, Any] = StateGraph(AgentState)
    builder.add_node("agent", agent_node)
    builder.add_node("tools", tools_node)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route_agent, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(name=ORDERS)


def _ask_refund(args: dict[str, Any], call_id: str) -> tuple[dict[str, Any], str | None, bool]:
    """Pause until the user answers the refund's confirmation: the arguments to refund with (edited, if
    they edited them), the reason of a rejection, and whether it was approved. An unreadable answer or
    invalid edit asks again (a few times, then it counts as a no)."""
    payload: dict[str, Any] = {
        "kind": "confirm",
        "action": _ISSUE_REFUND.name,
        "args": args,
        "tool_call_id": call_id,
        "question": describe(_ISSUE_REFUND.name, args),
    }
    for _ in range(_MAX_ASKS):
        decision = parse_decision(interrupt(payload))
        if decision is None:
            payload = {**payload, "error": _ANSWER_HELP}
        elif decision.verdict == "reject":
            return args, decision.reason, False
        elif decision.verdict == "approve":
            return args, None, True
        else:
            edited = _refund_args({**args, **decision.args})
            if edited is not None:
                return edited, None, True
            payload = {**payload, "error": "Those arguments are not valid: " + _ANSWER_HELP}
    return args, "no valid answer", False


def build_refunds_agent(model: BaseChatModel, store: Store | None) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The refunds agent: every refund waits for the user's confirmation, inside this subgraph."""
    agent_model: ChatRunnable = _bind(model, [_ISSUE_REFUND]) or model

    def route_start(state: AgentState) -> str:
        # The order id the supervisor's model passed is enough to propose the refund; without one (or
        # with invalid arguments) the agent's own model takes it from the conversation or asks for it.
        transfer = _last_call(state["messages"], transfer_to_refunds.name)
        return "propose" if transfer is not None and _refund_args(dict(transfer["args"])) else "agent"

    def propose_node(state: AgentState) -> dict[str, Any]:
        # The refund as the agent's own tool call, so the history shows what was asked and answered.
        transfer = _last_call(state["messages"], transfer_to_refunds.name)
        assert transfer is not None
        args = _refund_args(dict(transfer["args"])) or {}
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        call = ToolCall(name=_ISSUE_REFUND.name, args=args, id=call_id, type="tool_call")
        return {"messages": [AIMessage(content="", tool_calls=[call], id=str(uuid.uuid4()))]}

    async def agent_node(state: AgentState) -> dict[str, Any]:
        reply = await agent_model.ainvoke([SystemMessage(REFUNDS_PROMPT), *state["messages"]])
        return {"messages": [reply]}

    def route_agent(state: AgentState) -> str:
        return "confirm" if _calls_of(state)[1] else END

    async def confirm_node(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        # Re-run from its start on each resume: every interrupt before the pending one returns its answer.
        request, calls = _calls_of(state)
        assert request is not None
        results: list[ToolMessage] = []
        for call in calls:
            call_id = str(call["id"])
            args = _refund_args(dict(call["args"])) if call["name"] == _ISSUE_REFUND.name else None
            if args is None:
                results.append(_not_here(call, REFUNDS))
                continue
            args, reason, approved = _ask_refund(args, call_id)
            if not approved:
                text = refund_declined(args, reason)
            else:
                text = refund_issued(args)
                if store is not None:
                    # No money moves in this example; the refund is recorded once, under its key, which
                    # also makes the turn no longer cancellable (it did something).
                    session_id, _, message_id = shop.turn_of(config)
                    await store.perform_once(
                        key=f"{request.id}:{call_id}",
                        session_id=session_id,
                        name=_ISSUE_REFUND.name,
                        args=args,
                        effect=_recorded({"ok": True, "refunded": True, **args}),
                        message_id=message_id,
                    )
            results.append(ToolMessage(text, tool_call_id=call_id, name=call["name"]))
        return {"messages": results}

    builder: StateGraph[AgentState, Any, Any, Any] = StateGraph(AgentState)
    builder.add_node("propose", propose_node)
    builder.add_node("agent", agent_node)
    builder.add_node("confirm", confirm_node)
    builder.add_conditional_edges(START, route_start, ["propose", "agent"])
    builder.add_edge("propose", "confirm")
    builder.add_conditional_edges("agent", route_agent, ["confirm", END])
    builder.add_edge("confirm", "agent")
    return builder.compile(name=REFUNDS)


def _recorded(result: dict[str, Any]) -> Any:
    """An effect for ``Store.perform_once`` that only records ``result``."""

    async def _run(_tx: Any) -> dict[str, Any]:
        return result

    return _run


# -- the team ----------------------------------------------------------------------------------------


def build_team_graph(ctx: GraphContext) -> StateGraph[TeamState, Any, Any, Any]:
    """The team graph, uncompiled: Parley compiles it with its checkpointer (the agents inherit it)."""
    model = ctx.model
    router = _bind(model, [transfer_to_orders, transfer_to_refunds])
    if router is None:
        logger.info("the model has no tool calling: the team's supervisor chats without handing off")

    async def supervisor_node(state: TeamState) -> dict[str, Any]:
        reply = await (router or model).ainvoke([SystemMessage(SUPERVISOR_PROMPT), *state["messages"]])
        if not isinstance(reply, AIMessage) or not reply.tool_calls:
            return {"messages": [reply], "active_agent": ""}
        agent = ""
        answers: list[ToolMessage] = []
        for call in reply.tool_calls:
            target = TRANSFERS.get(call["name"])
            if target is not None and not agent:
                agent = target
                text = transferred(target)
            elif target is not None:
                text = f"Not done: the conversation was handed to the {agent} agent already."
            else:
                text = f"There is no tool {call['name']!r}: transfer to an agent or answer the user yourself."
            answers.append(ToolMessage(text, tool_call_id=str(call["id"]), name=call["name"]))
        return {"messages": [reply, *answers], "active_agent": agent}

    def route_supervisor(state: TeamState) -> str:
        agent = state.get("active_agent", "")
        if agent:
            return agent
        # Tool calls that were no handoff were answered with an error: the supervisor tries again.
        return "supervisor" if isinstance(state["messages"][-1], ToolMessage) else END

    builder: StateGraph[TeamState, Any, Any, Any] = StateGraph(TeamState)
    builder.add_node("supervisor", supervisor_node)
    builder.add_node(ORDERS, build_orders_agent(model, ctx.store))
    builder.add_node(REFUNDS, build_refunds_agent(model, ctx.store))
    builder.add_edge(START, "supervisor")
    builder.add_conditional_edges("supervisor", route_supervisor, [ORDERS, REFUNDS, "supervisor", END])
    builder.add_edge(ORDERS, END)
    builder.add_edge(REFUNDS, END)
    return builder


def build_graph(ctx: GraphContext) -> Hosted:
    """The team as Parley hosts it (``PARLEY_GRAPHS=team=parley.bots.team:build_graph``)."""
    return host(
        build_team_graph(ctx),
        interrupts=["confirm"],
        description="A supervisor hands requests to an orders agent and a refunds agent (subgraphs); "
        "refunds ask the user to confirm.",
    )
