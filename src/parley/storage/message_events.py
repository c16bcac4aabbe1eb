"""The ``parley_message_events`` rows: each message's events, numbered, for streams to replay.

A message's ``event_seq`` (on its row) is the id of its latest event. Appending ``n`` events moves it on
by ``n`` and writes them as one row covering ``first_seq..last_seq``, in one statement (PostgreSQL) or
one transaction (SQLite): the row lock on the message orders concurrent appenders, so ids are gapless
and never reused — also after a crash, since an event gets its id only when it is stored, and is
delivered to anyone only after that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from parley.core.events import MessageEvent
from parley.storage import rows
from parley.storage.db import Tx

_APPEND_POSTGRES = (
    "WITH m AS (UPDATE parley_messages SET event_seq = event_seq + ? WHERE message_id = ? "
    "RETURNING event_seq) "
    "INSERT INTO parley_message_events (message_id, first_seq, last_seq, events, created_at) "
    "SELECT ?, m.event_seq - ? + 1, m.event_seq, ?, ? FROM m RETURNING last_seq"
)


async def append(tx: Tx, *, message_id: str, events: Sequence[tuple[str, Any]], now: str) -> int | None:
    """Store ``events`` (``(kind, data)``, in order) after the message's others; the id of the last one,
    or None if the message does not exist (its session was deleted)."""
    count = len(events)
    payload = _encode(events)
    if tx.dialect.name == "postgres":
        # One statement, so it can run without BEGIN/COMMIT: one round trip.
        row = await tx.one(_APPEND_POSTGRES, (count, message_id, message_id, count, payload, now))
        return None if row is None else int(row["last_seq"])
    row = await tx.one(
        "UPDATE parley_messages SET event_seq = event_seq + ? WHERE message_id = ? RETURNING event_seq",
        (count, message_id),
    )
    if row is None:
        return None
    last = int(row["event_seq"])
    await insert_run(tx, message_id=message_id, last=last, events=events, now=now)
    return last


# Several messages at once, one round trip: each message's ``event_seq`` moves on by its count of events
# and its run is inserted, as in _APPEND_POSTGRES.
_APPEND_MANY_POSTGRES = (
    "WITH i AS (SELECT * FROM unnest(?::text[], ?::bigint[], ?::text[]) AS i(message_id, n, events)), "
    "m AS (UPDATE parley_messages p SET event_seq = p.event_seq + i.n FROM i "
    "WHERE p.message_id = i.message_id RETURNING p.message_id, p.event_seq, i.n, i.events) "
    "INSERT INTO parley_message_events (message_id, first_seq, last_seq, events, created_at) "
    "SELECT m.message_id, m.event_seq - m.n + 1, m.event_seq, m.events, ? FROM m "
    "RETURNING message_id, last_seq"
)


async def append_many(
    tx: Tx, *, events: Mapping[str, Sequence[tuple[str, Any]]], now: str
) -> dict[str, int | None]:
    """``append`` for several messages (by id) together: one statement (PostgreSQL) or one transaction
    (SQLite), in the order of their ids."""
    ids = sorted(events)
    if tx.dialect.name == "postgres":
        found = await tx.all(
            _APPEND_MANY_POSTGRES,
            (ids, [len(events[m]) for m in ids], [_encode(events[m]) for m in ids], now),
        )
        lasts = {str(row["message_id"]): int(row["last_seq"]) for row in found}
        return {m: lasts.get(m) for m in ids}
    return {m: await append(tx, message_id=m, events=events[m], now=now) for m in ids}


async def insert_run(
    tx: Tx, *, message_id: str, last: int, events: Sequence[tuple[str, Any]], now: str
) -> None:
    """Store ``events`` as ids ``last - len(events) + 1 .. last``, the message's ``event_seq`` having been
    moved on to ``last`` in the same transaction (``messages.finish`` does, with the closing events)."""
    await tx.execute(
        "INSERT INTO parley_message_events (message_id, first_seq, last_seq, events, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (message_id, last - len(events) + 1, last, _encode(events), now),
    )


def _encode(events: Sequence[tuple[str, Any]]) -> str:
    return json.dumps([[kind, data] for kind, data in events], default=str)


async def read(tx: Tx, *, message_id: str, after: int) -> list[MessageEvent]:
    """The message's stored events with an id above ``after``, in order."""
    found = await tx.all(
        "SELECT first_seq, events FROM parley_message_events "
        "WHERE message_id = ? AND last_seq > ? ORDER BY first_seq",
        (message_id, after),
    )
    result: list[MessageEvent] = []
    for row in found:
        for offset, (kind, data) in enumerate(rows.loads(row["events"])):
            event_id = int(row["first_seq"]) + offset
            if event_id > after:
                result.append(MessageEvent(kind=kind, data=data, id=event_id))
    return result


async def prune(tx: Tx, *, finished_before: str) -> int:
    """Delete the events of messages that ended before ``finished_before``; how many rows went.

    Whole messages only: a stream never finds part of a message's events missing. Once they are gone,
    a stream of that message gets only its ``done`` (whose id is the message's ``event_seq``).
    """
    return await tx.execute(
        # Candidates by the created_at index, each checked against its message by the unique key.
        "DELETE FROM parley_message_events WHERE created_at < ? AND EXISTS (SELECT 1 FROM parley_messages m "
        "WHERE m.message_id = parley_message_events.message_id AND m.finished_at < ? "
        f"AND m.status NOT IN {rows.PENDING_SQL})",
        (finished_before, finished_before),
    )
