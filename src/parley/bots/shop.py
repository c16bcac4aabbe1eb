"""The bundled assistant's demo shop: real rows in Parley's database, each action exactly once.

The shop's tables belong to the assistant, not to the store every deployment gets: they are created
here, on first use, in whichever database Parley runs on (the SQL is the same for SQLite and
PostgreSQL). Each action runs through ``Store.perform_once``, inside the transaction that records it
under its key, so no crash can make it happen twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.runnables import RunnableConfig

from parley.core.checkpoint_tags import CHECKPOINT_TAG, USER_TAG
from parley.core.ports import Store
from parley.core.timestamps import utc_now
from parley.storage.db import POSTGRES, Row, Tx

CATALOG: dict[str, float] = {"mug": 9.0, "t-shirt": 20.0, "sticker": 2.5, "notebook": 12.0, "hoodie": 45.0}

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS parley_orders ("
    "order_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, user_id TEXT NOT NULL, item TEXT NOT NULL, "
    "quantity INTEGER NOT NULL, total DOUBLE PRECISION NOT NULL, action_key TEXT NOT NULL UNIQUE, "
    "created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS parley_refunds ("
    "refund_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, amount DOUBLE PRECISION NOT NULL, "
    "action_key TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)",
)

_SCHEMA_LOCK_KEY = 0x70617273686F70  # any constant works ("parshop")

ActionContext = dict[str, Any]
"""``key``, ``session_id``, ``user_id`` and ``now`` of the action being performed."""


async def ensure_tables(tx: Tx) -> None:
    """Create the shop's tables if this database has none yet (cheap: ``IF NOT EXISTS``)."""
    if tx.dialect is POSTGRES:
        present = await tx.one("SELECT to_regclass('parley_refunds') IS NOT NULL AS present")
        if present is not None and present["present"]:
            return
        # Two first actions at once would race in PostgreSQL's catalog (IF NOT EXISTS is not atomic there).
        await tx.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK_KEY,))
    for statement in _SCHEMA:
        await tx.execute(statement)


async def _place_order(tx: Tx, ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    item = str(args.get("item", "")).lower()
    quantity = int(args.get("quantity", 1))
    if item not in CATALOG:
        return {"ok": False, "error": f"unknown item {item!r}; the catalog has {', '.join(CATALOG)}"}
    if not 1 <= quantity <= 100:
        return {"ok": False, "error": "quantity must be between 1 and 100"}
    order_id = "ord_" + uuid.uuid4().hex[:10]
    total = round(CATALOG[item] * quantity, 2)
    await tx.execute(
        "INSERT INTO parley_orders (order_id, session_id, user_id, item, quantity, total, action_key, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (order_id, ctx["session_id"], ctx["user_id"], item, quantity, total, ctx["key"], ctx["now"]),
    )
    return {"ok": True, "order_id": order_id, "item": item, "quantity": quantity, "total": total}


async def _issue_refund(tx: Tx, ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    order_id = str(args.get("order_id", ""))
    order = await tx.one(
        "SELECT total FROM parley_orders WHERE order_id = ? AND user_id = ?" + tx.dialect.for_update,
        (order_id, ctx["user_id"]),
    )
    if order is None:
        return {"ok": False, "error": f"no order {order_id!r}"}
    # Earlier refunds count against the total: two refunds of the whole order must not both pass. The
    # order row is locked (where the dialect needs it), so two refunds of one order take turns here.
    refunded = await tx.one(
        "SELECT coalesce(sum(amount), 0) AS refunded FROM parley_refunds WHERE order_id = ?", (order_id,)
    )
    remaining = round(float(order["total"]) - float(refunded["refunded"] if refunded else 0), 2)
    if remaining <= 0:
        return {"ok": False, "error": f"order {order_id!r} has been refunded in full"}
    amount = round(float(args.get("amount", remaining)), 2)
    if not 0 < amount <= remaining:
        return {"ok": False, "error": f"amount must be more than 0 and at most {remaining} (what is left)"}
    refund_id = "ref_" + uuid.uuid4().hex[:10]
    await tx.execute(
        "INSERT INTO parley_refunds (refund_id, order_id, amount, action_key, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (refund_id, order_id, amount, ctx["key"], ctx["now"]),
    )
    return {"ok": True, "refund_id": refund_id, "order_id": order_id, "amount": amount}


async def _lookup_order(tx: Tx, ctx: ActionContext, args: dict[str, Any]) -> dict[str, Any]:
    row: Row | None = await tx.one(
        "SELECT order_id, item, quantity, total, created_at FROM parley_orders "
        "WHERE order_id = ? AND user_id = ?",
        (str(args.get("order_id", "")), ctx["user_id"]),
    )
    return {"ok": False, "error": "no such order"} if row is None else {"ok": True, **dict(row)}


ACTIONS: dict[str, Callable[[Tx, ActionContext, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "place_order": _place_order,
    "issue_refund": _issue_refund,
    "lookup_order": _lookup_order,
}
EFFECTS = frozenset({"place_order", "issue_refund"})
"""The actions that change something (a lookup does not): a turn that ran one can no longer be cancelled."""


def effect(name: str, args: dict[str, Any], ctx: ActionContext) -> Callable[[Tx], Awaitable[dict[str, Any]]]:
    """The shop action ``name`` as an effect for ``Store.perform_once``."""
    action = ACTIONS.get(name)

    async def _run(tx: Tx) -> dict[str, Any]:
        if action is None:
            return {"ok": False, "error": f"there is no tool {name!r}"}
        await ensure_tables(tx)
        return await action(tx, ctx, args)

    return _run


def turn_of(config: RunnableConfig) -> tuple[str, str, str | None]:
    """The session, the user, and the Parley message of the turn running, from the config Parley runs a
    node with (the thread, and the checkpoint metadata it writes)."""
    metadata = config.get("metadata") or {}
    message_id = metadata.get(CHECKPOINT_TAG)
    return (
        str(config["configurable"]["thread_id"]),
        str(metadata.get(USER_TAG, "")),
        str(message_id) if message_id is not None else None,
    )


async def perform_tool(
    store: Store,
    config: RunnableConfig,
    *,
    request_id: str | None,
    call_id: str,
    name: str,
    args: dict[str, Any],
) -> dict[str, Any]:
    """Run the shop action of a model's tool call once: keyed by the AI message and the call, so a node run
    again (after a crash, or on resume) finds the first result instead of acting twice."""
    session_id, user_id, message_id = turn_of(config)
    key = f"{request_id}:{call_id}"
    return await store.perform_once(
        key=key,
        session_id=session_id,
        name=name,
        args=args,
        effect=effect(
            name, args, {"key": key, "session_id": session_id, "user_id": user_id, "now": utc_now()}
        ),
        message_id=message_id,
        acts=name in EFFECTS,
    )
