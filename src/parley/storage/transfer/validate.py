"""Checking a whole session document before anything of it is written.

One pass over the document (``reader.parts``): every member in its place, every row's columns known
to this database and of the type its column takes, every reference to a message resolved, every
checkpoint and write deserialisable by the saver's serializer, and the checksum recomputed and compared
at the end. The first fault is a ``DocumentError`` naming the path to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol

from parley.core.statuses import TERMINAL_STATUSES
from parley.storage.transfer import codec
from parley.storage.transfer.document import (
    ARRAYS,
    CHECKSUM_ALGORITHM,
    FORMAT,
    MEMBERS,
    VERSION,
    Checksum,
    DocumentError,
)
from parley.storage.transfer.reader import End, Item, Member, Part, Start
from parley.storage.transfer.tables import Column

MAX_ID_CHARS = 100


@dataclass
class Summary:
    """What a valid document holds."""

    session_id: str = ""
    user_id: str = ""
    graph: str = ""
    counts: dict[str, int] = field(default_factory=dict)


def _check_row(row: Any, known: dict[str, Column], loc: list[str | int]) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DocumentError("must be an object (column → value)", loc=loc)
    for name, value in row.items():
        column = known.get(name)
        if column is None:
            raise DocumentError("is not a column this instance has", loc=[*loc, name])
        if value is None:
            if column.required:
                raise DocumentError("must not be null", loc=[*loc, name])
            continue
        if column.kind == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif column.kind == "real":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise DocumentError(
                f"must be {'a string' if column.kind == 'text' else 'a number'}", loc=[*loc, name]
            )
    for name, column in known.items():
        if column.required and name not in row:
            raise DocumentError(f"lacks the column {name}", loc=loc)
    return row


class _Checker:
    """The state of one pass: what was seen so far."""

    def __init__(
        self, *, schema: dict[str, dict[str, Column]], serde: SerializerProtocol, served: Mapping[str, str]
    ) -> None:
        self.schema = schema
        self.serde = serde
        self.served = served
        self.summary = Summary()
        self.checksum = Checksum()
        self.message_ids: set[str] = set()
        self.seen_keys: set[tuple[Any, ...]] = set()

    def member(self, key: str, value: Any) -> None:
        loc: list[str | int] = [key]
        if key == "format":
            if value != FORMAT:
                raise DocumentError(f"must be {FORMAT!r}", loc=loc)
        elif key == "version":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DocumentError("must be a positive integer", loc=loc)
            if value > VERSION:
                raise DocumentError(
                    f"is {value}, newer than this instance reads (up to {VERSION}); upgrade Parley", loc=loc
                )
        elif key == "graph":
            if not isinstance(value, str):
                raise DocumentError("must be a string", loc=loc)
            name = self.served.get(value)
            if name is None:
                hosted = ", ".join(sorted({repr(n) for n in self.served.values()}))
                raise DocumentError(
                    f"is {value[:200]!r}, a graph this instance does not serve (it serves {hosted})", loc=loc
                )
            self.summary.graph = name
        elif key == "exported_at":
            if not isinstance(value, str):
                raise DocumentError("must be a string", loc=loc)
        elif key == "session":
            row = _check_row(value, self.schema["session"], loc)
            session_id, user_id = row.get("session_id"), row.get("user_id")
            if (
                not isinstance(session_id, str)
                or not 0 < len(session_id) <= MAX_ID_CHARS
                or any(ord(c) < 0x20 for c in session_id)  # the API's paths could not name it
            ):
                raise DocumentError(
                    f"must be a string of 1 to {MAX_ID_CHARS} characters, none a control character",
                    loc=[*loc, "session_id"],
                )
            if not isinstance(user_id, str) or not user_id:
                raise DocumentError("must be a non-empty string", loc=[*loc, "user_id"])
            self.summary.session_id, self.summary.user_id = session_id, user_id
        self.checksum.member(key, value)

    def item(self, key: str, index: int, value: Any) -> None:
        loc: list[str | int] = [key, index]
        if key == "checkpoints":
            decoded = codec.decode(self.serde, value, loc)
            self._unique((key, decoded.checkpoint_ns, decoded.checkpoint_id), loc)
        else:
            row = _check_row(value, self.schema[key], loc)
            self._row_rules(key, row, loc)
        self.summary.counts[key] = self.summary.counts.get(key, 0) + 1
        self.checksum.item(value)

    def _unique(self, identity: tuple[Any, ...], loc: list[str | int]) -> None:
        if identity in self.seen_keys:
            raise DocumentError("repeats an earlier item", loc=loc)
        self.seen_keys.add(identity)

    def _row_rules(self, key: str, row: dict[str, Any], loc: list[str | int]) -> None:
        """What a row must say for the session to make sense on this instance."""
        if "user_id" in row and row["user_id"] != self.summary.user_id:
            raise DocumentError("must be the session's user", loc=[*loc, "user_id"])
        message_id = row.get("message_id")
        if key == "messages":
            assert isinstance(message_id, str)  # a required text column
            self._unique((key, message_id), loc)
            self.message_ids.add(message_id)
            if row.get("status") not in {s.value for s in TERMINAL_STATUSES}:
                raise DocumentError(
                    "must be a terminal status (a session is exported between turns)", loc=[*loc, "status"]
                )
            return
        if message_id is not None and message_id not in self.message_ids:
            raise DocumentError("names no message of the document", loc=[*loc, "message_id"])
        if key == "transcript":
            line = row.get("line")
            if line not in (0, 1) or isinstance(line, bool):
                raise DocumentError("must be 0 (the user's line) or 1 (the reply)", loc=[*loc, "line"])
            self._unique((key, message_id, line), loc)
        elif key == "interrupts":
            self._unique((key, row.get("interrupt_id")), loc)
        elif key == "actions":
            self._unique((key, row.get("action_key")), loc)
        elif key == "message_events":
            self._unique((key, message_id, row.get("first_seq")), loc)


def check(
    parts: Iterator[Part],
    *,
    schema: dict[str, dict[str, Column]],
    serde: SerializerProtocol,
    served: Mapping[str, str],
) -> Summary:
    """Read every part of the document; its ``Summary`` if all is well, else ``DocumentError``."""
    checker = _Checker(schema=schema, serde=serde, served=served)
    # The transcript's line is not a column: it says which of the message's two positions the line has.
    checker.schema["transcript"] = {
        **schema["transcript"],
        "line": Column("line", "integer", required=True),
    }
    expected = iter(MEMBERS)
    checksum: Any = None
    for part in parts:
        if isinstance(part, Item):
            checker.item(part.key, part.index, part.value)
            continue
        if isinstance(part, End):
            checker.checksum.end()
            continue
        want = next(expected, None)
        if part.key != want:
            where = f"expected {want!r} here" if want else "nothing may follow checksum"
            raise DocumentError(
                f"is out of place or unknown ({where}; members come in the order exported)", loc=[part.key]
            )
        if isinstance(part, Start):
            if part.key not in ARRAYS:
                raise DocumentError("must not be a list", loc=[part.key])
            checker.checksum.start(part.key)
        elif isinstance(part, Member):
            if part.key in ARRAYS:
                raise DocumentError("must be a list", loc=[part.key])
            if part.key == "checksum":
                checksum = part.value
            else:
                checker.member(part.key, part.value)
    missing = next(expected, None)
    if missing is not None:
        raise DocumentError(f"lacks the member {missing!r}", loc=[missing])
    if not isinstance(checksum, dict) or set(checksum) != {"algorithm", "value"}:
        raise DocumentError("must be {algorithm, value}", loc=["checksum"])
    if checksum["algorithm"] != CHECKSUM_ALGORITHM:
        raise DocumentError(f"must be {CHECKSUM_ALGORITHM!r}", loc=["checksum", "algorithm"])
    if checksum["value"] != checker.checksum.hexdigest():
        raise DocumentError(
            "does not match the content: the document was changed or damaged", loc=["checksum", "value"]
        )
    return checker.summary
