"""The ``parley_actions`` ledger: a side effect runs once per key.

The effect runs inside the transaction that stores its result under the key, so there is no moment in
which the effect exists without its key: a step re-run after a crash finds the result and does not act
again. Graphs bring their own effects (the bundled assistant's demo shop is one, in ``bots/shop.py``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from parley.storage import rows
from parley.storage.db import Tx


async def perform_once(
    tx: Tx,
    *,
    key: str,
    session_id: str,
    name: str,
    args: dict[str, Any],
    effect: Callable[[Tx], Awaitable[dict[str, Any]]],
    now: str,
) -> dict[str, Any]:
    """The result stored under ``key``, or ``effect``'s, stored under it now."""
    earlier = await tx.one("SELECT result FROM parley_actions WHERE action_key = ?", (key,))
    if earlier is not None:
        stored: dict[str, Any] = json.loads(earlier["result"])
        return stored
    result = await effect(tx)
    await tx.execute(
        "INSERT INTO parley_actions (action_key, session_id, name, args, result, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (key, session_id, name, rows.dumps(args), json.dumps(result), now),
    )
    return result
