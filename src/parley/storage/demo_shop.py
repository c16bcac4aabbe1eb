"""The bundled assistant's demo shop: real rows in Parley's database, each action exactly once.

``perform`` runs inside one store transaction: it looks the action key up in ``parley_actions`` and
returns the stored result if the action ran before (a turn re-run after a crash); otherwise it applies
the action and stores its result under the key, together. There is no window in which the effect exists
without its key, so no crash can make it happen twice.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

from parley.core.errors import InvalidInput

CATALOG: dict[str, float] = {"mug": 9.0, "t-shirt": 20.0, "sticker": 2.5, "notebook": 12.0, "hoodie": 45.0}


def _place_order(conn: sqlite3.Connection, ctx: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    item = str(args.get("item", "")).lower()
    quantity = int(args.get("quantity", 1))
    if item not in CATALOG:
        return {"ok": False, "error": f"unknown item {item!r}; the catalog has {', '.join(CATALOG)}"}
    if not 1 <= quantity <= 100:
        return {"ok": False, "error": "quantity must be between 1 and 100"}
    order_id = "ord_" + uuid.uuid4().hex[:10]
    total = round(CATALOG[item] * quantity, 2)
    conn.execute(
        "INSERT INTO parley_orders (order_id, session_id, user_id, item, quantity, total, action_key, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (order_id, ctx["session_id"], ctx["user_id"], item, quantity, total, ctx["key"], ctx["now"]),
    )
    return {"ok": True, "order_id": order_id, "item": item, "quantity": quantity, "total": total}


def _issue_refund(conn: sqlite3.Connection, ctx: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    order_id = str(args.get("order_id", ""))
    order = conn.execute(
        "SELECT total FROM parley_orders WHERE order_id = ? AND user_id = ?", (order_id, ctx["user_id"])
    ).fetchone()
    if order is None:
        return {"ok": False, "error": f"no order {order_id!r}"}
    amount = float(args.get("amount", order["total"]))
    if not 0 < amount <= order["total"]:
        return {"ok": False, "error": f"amount must be between 0 and {order['total']}"}
    refund_id = "ref_" + uuid.uuid4().hex[:10]
    conn.execute(
        "INSERT INTO parley_refunds (refund_id, order_id, amount, action_key, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (refund_id, order_id, amount, ctx["key"], ctx["now"]),
    )
    return {"ok": True, "refund_id": refund_id, "order_id": order_id, "amount": amount}


def _lookup_order(conn: sqlite3.Connection, ctx: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    row = conn.execute(
        "SELECT order_id, item, quantity, total, created_at FROM parley_orders "
        "WHERE order_id = ? AND user_id = ?",
        (str(args.get("order_id", "")), ctx["user_id"]),
    ).fetchone()
    return {"ok": False, "error": "no such order"} if row is None else {"ok": True, **dict(row)}


ACTIONS: dict[str, Callable[[sqlite3.Connection, dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "place_order": _place_order,
    "issue_refund": _issue_refund,
    "lookup_order": _lookup_order,
}
EFFECTS = frozenset({"place_order", "issue_refund"})
"""The actions that change something (a lookup does not): a turn that ran one can no longer be cancelled."""


def perform(
    conn: sqlite3.Connection,
    *,
    key: str,
    session_id: str,
    user_id: str,
    name: str,
    args: dict[str, Any],
    now: str,
) -> dict[str, Any]:
    """Apply action ``name`` once per ``key``; a repeat returns the first result."""
    earlier = conn.execute("SELECT result FROM parley_actions WHERE action_key = ?", (key,)).fetchone()
    if earlier is not None:
        result: dict[str, Any] = json.loads(earlier[0])
        return result
    action = ACTIONS.get(name)
    if action is None:
        raise InvalidInput(f"unknown action {name!r}", loc=["action"])
    result = action(conn, {"key": key, "session_id": session_id, "user_id": user_id, "now": now}, args)
    conn.execute(
        "INSERT INTO parley_actions (action_key, session_id, name, args, result, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (key, session_id, name, json.dumps(args, default=str), json.dumps(result), now),
    )
    return result
