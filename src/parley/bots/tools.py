"""The assistant's tools: what the model may call, which need the user's confirmation, and how an
answer to a confirmation is read.

Tools with side effects never run on the model's say-so alone: the turn pauses with the exact action
(name, arguments, a sentence saying what will happen) and the user approves, rejects or edits it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from parley.bots.shop import CATALOG


class PlaceOrderArgs(BaseModel):
    item: str = Field(description=f"What to buy; one of: {', '.join(CATALOG)}.")
    quantity: int = Field(default=1, ge=1, le=100, description="How many.")


class IssueRefundArgs(BaseModel):
    order_id: str = Field(description="The order to refund, e.g. ord_1234abcd.")
    amount: float | None = Field(default=None, gt=0, description="How much; the whole order if omitted.")


class LookupOrderArgs(BaseModel):
    order_id: str = Field(description="The order to look up.")


class NoArgs(BaseModel):
    pass


def _schema_only(name: str) -> Any:
    def _never(**_: Any) -> str:  # Parley's tools node runs tools, never LangChain's executor
        raise RuntimeError(f"{name} runs in the assistant's tools node")

    return _never


def _tool(name: str, description: str, args: type[BaseModel]) -> BaseTool:
    return StructuredTool.from_function(
        func=_schema_only(name), name=name, description=description, args_schema=args
    )


TOOLS: tuple[BaseTool, ...] = (
    _tool("list_catalog", "List what the shop sells, with prices.", NoArgs),
    _tool("lookup_order", "Look up one of the user's orders.", LookupOrderArgs),
    _tool("place_order", "Order an item for the user (asks the user to confirm first).", PlaceOrderArgs),
    _tool("issue_refund", "Refund an order of the user's (asks the user to confirm first).", IssueRefundArgs),
)
SENSITIVE = frozenset({"place_order", "issue_refund"})
"""Tools with side effects: they run only after the user confirms."""


def describe(name: str, args: dict[str, Any]) -> str:
    """The sentence a confirmation shows: exactly what will happen."""
    if name == "place_order":
        item = str(args.get("item", "?")).lower()
        quantity = int(args.get("quantity", 1) or 1)
        price = CATALOG.get(item)
        total = f" (${price * quantity:.2f})" if price is not None else ""
        return f"Place an order for {quantity} x {item}{total}?"
    if name == "issue_refund":
        amount = args.get("amount")
        what = f"${float(amount):.2f}" if amount is not None else "the full amount"
        return f"Refund {what} on order {args.get('order_id', '?')}?"
    return f"Run {name} with {args}?"


@dataclass(frozen=True)
class Decision:
    """A person's answer to a confirmation or a review."""

    verdict: Literal["approve", "reject", "edit"]
    args: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    reason: str | None = None


_YES = {"approve", "approved", "yes", "y", "ok", "okay", "confirm", "sure", "go ahead"}
_NO = {"reject", "rejected", "no", "n", "cancel", "stop", "deny", "decline"}


def parse_decision(value: Any) -> Decision | None:
    """Read an answer: ``{"decision": "approve" | "reject" | "edit", "args" | "text" | "reason": …}``,
    or a plain word (``yes``, ``no`` …) as a chat message gives it. None if it is neither."""
    if isinstance(value, str):
        word = value.strip().lower().rstrip(".!")
        if word in _YES:
            return Decision("approve")
        if word in _NO:
            return Decision("reject", reason=value.strip())
        return None
    if not isinstance(value, dict):
        return None
    verdict = value.get("decision")
    if verdict == "approve":
        return Decision("approve")
    if verdict == "reject":
        reason = value.get("reason")
        return Decision("reject", reason=str(reason) if reason is not None else None)
    if verdict == "edit":
        args = value.get("args")
        text = value.get("text")
        if isinstance(args, dict) or isinstance(text, str):
            return Decision("edit", args=args if isinstance(args, dict) else {}, text=text)
    return None
