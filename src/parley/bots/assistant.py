"""The bundled assistant: chat with bounded memory, tools, the user's confirmation before actions, and
an operator's review of sensitive drafts.

    START ─▶ [summarise, if the window overflowed] ─▶ agent ─▶ tools ─▶ agent … ─▶ review ─▶ END

- ``agent`` calls the model with the system prompt, the running summary and the window of messages.
- ``tools`` runs the tool calls of the model's last message. ``place_order`` and ``issue_refund`` pause
  first for the user (``interrupt`` of kind ``confirm`` with the exact action); the user approves, rejects
  or edits the arguments. Each action runs once: its key is the AI message id and the tool call id.
- ``review`` checks the final draft against the review policy (keywords, amounts over a limit); a flagged
  draft pauses for an operator (kind ``review``), who approves, edits or rejects it before the user sees
  anything: the interrupt's value is redacted for the user (``core.redaction``), and the ``agent``'s
  model is tagged ``HOLD_TAG`` whenever its draft may be flagged, so its tokens are published only once
  the turn completes unreviewed. With review keywords (the default) that is every draft, whose words are
  judged only once written; with ``PARLEY_REVIEW_KEYWORDS=`` (none) drafts stream live unless a tool's
  amount already sends them to review.

A model without tool calling (``bind_tools`` not implemented) still chats and is still reviewed.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt

from parley.bots import shop
from parley.bots.memory import overflow_cut, removals, summarise
from parley.bots.review import ReviewPolicy
from parley.bots.tools import SENSITIVE, TOOLS, Decision, describe, parse_decision
from parley.core.context import GraphContext
from parley.core.usage import HOLD_TAG, NOSTREAM_TAG

logger = logging.getLogger(__name__)

REVIEW_DECLINED_REPLY = (
    "I'm sorry, I can't answer that here. A member of our team has been notified and will follow up."
)
_MAX_ASKS = 3
_ANSWER_HELP = (
    'Answer with {"decision": "approve"}, {"decision": "reject", "reason": …} or {"decision": "edit", …}.'
)


class AssistantState(TypedDict):
    """The graph state: a bounded window of messages and the summary of everything before it."""

    messages: Annotated[list[AnyMessage], add_messages]
    summary: str


def _ask(payload: dict[str, Any]) -> Decision:
    """Pause for a person until they give a readable answer (a few tries, then it counts as a no)."""
    for _ in range(_MAX_ASKS):
        decision = parse_decision(interrupt(payload))
        if decision is not None:
            return decision
        payload = {**payload, "error": _ANSWER_HELP}
    return Decision("reject", reason="no valid answer")


def _this_turn(messages: list[AnyMessage]) -> tuple[str, list[AnyMessage]]:
    """The user's latest message and everything after it."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return str(messages[index].text), messages[index + 1 :]
    return "", messages


def build_graph(ctx: GraphContext) -> StateGraph[AssistantState, Any, Any, Any]:
    """The assistant graph, uncompiled: Parley compiles it with its checkpointer."""
    settings = ctx.settings
    model = ctx.model
    store = ctx.store
    policy = ReviewPolicy(keywords=tuple(settings.review_keywords), amount_limit=settings.review_amount_limit)
    agent_model: Any = model
    tools_enabled = store is not None
    if tools_enabled:
        try:
            agent_model = model.bind_tools(list(TOOLS))
        except NotImplementedError:
            logger.info("the model has no tool calling: the assistant chats without tools")
            tools_enabled = False
    # A draft that may go to an operator's review has its tokens held until the turn completes (dropped
    # if it pauses for review), so no stream shows a draft the user must not see. Whether the draft's own
    # words send it to review is known only once it is written, so with review keywords every draft is
    # held; without them, what could send it (the question, a tool's amount) is known before it is
    # written, and a draft that cannot be flagged streams live.
    held_model = agent_model.with_config(tags=[HOLD_TAG])
    live_model = agent_model

    def route_start(state: AssistantState) -> Literal["summarise", "agent"]:
        cut = overflow_cut(
            state["messages"], max_messages=settings.memory_max_messages, keep=settings.memory_keep_messages
        )
        return "summarise" if cut else "agent"

    async def summarise_node(state: AssistantState) -> dict[str, Any]:
        messages = state["messages"]
        cut = overflow_cut(
            messages, max_messages=settings.memory_max_messages, keep=settings.memory_keep_messages
        )
        folded = messages[:cut]
        summary = await summarise(
            # "nostream": the summary is bookkeeping, not part of the reply streamed to the user.
            model.with_config(tags=[NOSTREAM_TAG]),
            previous=state.get("summary", ""),
            messages=folded,
            max_chars=settings.memory_max_summary_chars,
        )
        return {"summary": summary, "messages": removals(folded)}

    async def agent_node(state: AssistantState) -> dict[str, Any]:
        system = settings.system_prompt
        summary = state.get("summary", "")
        if summary:
            system += "\n\nSummary of the conversation so far:\n" + summary
        question, turn = _this_turn(state["messages"])
        may_be_flagged = bool(policy.keywords) or bool(
            policy.reasons(draft="", question=question, tool_results=turn)
        )
        drafting = held_model if may_be_flagged else live_model
        reply = await drafting.ainvoke([SystemMessage(system), *state["messages"]])
        return {"messages": [reply]}

    def route_agent(state: AssistantState) -> Literal["tools", "review"]:
        last = state["messages"][-1]
        return "tools" if tools_enabled and isinstance(last, AIMessage) and last.tool_calls else "review"

    async def tools_node(state: AssistantState, config: RunnableConfig) -> dict[str, Any]:
        assert store is not None
        request = state["messages"][-1]
        assert isinstance(request, AIMessage)
        results: list[ToolMessage] = []
        for call in request.tool_calls:
            name, args, call_id = call["name"], dict(call["args"]), str(call["id"])
            if name in SENSITIVE:
                decision = _ask(
                    {
                        "kind": "confirm",
                        "action": name,
                        "args": args,
                        "tool_call_id": call_id,
                        "question": describe(name, args),
                    }
                )
                if decision.verdict == "reject":
                    declined = {
                        "ok": False,
                        "declined": True,
                        "reason": decision.reason or "the user declined",
                    }
                    results.append(ToolMessage(json.dumps(declined), tool_call_id=call_id, name=name))
                    continue
                if decision.verdict == "edit":
                    args = {**args, **decision.args}
            if name == "list_catalog":
                result: dict[str, Any] = {"ok": True, "catalog": shop.CATALOG}
            elif name in {t.name for t in TOOLS}:
                # Once an action ran for the turn's message, the turn can no longer be cancelled.
                result = await shop.perform_tool(
                    store, config, request_id=request.id, call_id=call_id, name=name, args=args
                )
            else:
                result = {"ok": False, "error": f"there is no tool {name!r}"}
            results.append(ToolMessage(json.dumps(result), tool_call_id=call_id, name=name))
        return {"messages": results}

    async def review_node(state: AssistantState) -> dict[str, Any]:
        draft = state["messages"][-1]
        if not isinstance(draft, AIMessage):
            return {}
        question, turn = _this_turn(state["messages"])
        reasons = policy.reasons(draft=str(draft.text), question=question, tool_results=turn)
        if not reasons:
            return {}
        decision = _ask(
            {"kind": "review", "draft": str(draft.text), "reasons": reasons, "question": question}
        )
        if decision.verdict == "approve":
            return {}
        text = decision.text if decision.verdict == "edit" and decision.text else REVIEW_DECLINED_REPLY
        # Same id: add_messages replaces the draft, so the user never sees it.
        return {"messages": [AIMessage(content=text, id=draft.id)]}

    builder: StateGraph[AssistantState, Any, Any, Any] = StateGraph(AssistantState)
    builder.add_node("summarise", summarise_node)
    builder.add_node("agent", agent_node)
    builder.add_node("tools", tools_node)
    builder.add_node("review", review_node)
    builder.add_conditional_edges(START, route_start)
    builder.add_edge("summarise", "agent")
    builder.add_conditional_edges("agent", route_agent)
    builder.add_edge("tools", "agent")
    builder.add_edge("review", END)
    return builder
