"""Which of Parley's tables a session document carries, and their columns as this database has them.

Rows are carried generically, column by column, as the tables stand (a column another migration adds
travels without a change here); only the columns an instance assigns itself are left out
(``Section.assigned``): ``session_id`` (the document's session), ``seq`` (the global arrival order, given
anew by the importing database) and the transcript's ``position`` (``2·seq`` + its ``line``). On
import, a column this database lacks is refused, and one it has that the document lacks takes its
default.
"""

from __future__ import annotations

from dataclasses import dataclass

from parley.storage.db import Tx


@dataclass(frozen=True, slots=True)
class Section:
    """A member of the document that holds rows of one table."""

    member: str
    table: str
    assigned: frozenset[str]
    """Columns the importing instance fills in; the document does not carry them."""
    order: str
    """The columns the rows are exported in order of (a unique key, for paging)."""


SESSION = Section("session", "parley_sessions", frozenset(), "session_id")
SECTIONS = (
    Section("messages", "parley_messages", frozenset({"seq", "session_id"}), "seq"),
    Section("transcript", "parley_transcript", frozenset({"session_id", "position"}), "position"),
    Section("interrupts", "parley_interrupts", frozenset({"session_id"}), "interrupt_id"),
    Section("actions", "parley_actions", frozenset({"session_id"}), "action_key"),
    Section("message_events", "parley_message_events", frozenset(), "message_id, first_seq"),
)
"""In document order. Not carried: the demo shop's orders and refunds (the bot's own domain data, not
the conversation's), and the job queue's rows (none exist for an idle session)."""


@dataclass(frozen=True, slots=True)
class Column:
    """A column as the importing database has it."""

    name: str
    kind: str
    """``text``, ``integer`` or ``real``: what JSON value it takes."""
    required: bool
    """NOT NULL without a default: a row must carry it."""


def _kind(declared: str) -> str:
    declared = declared.lower()
    if "int" in declared:
        return "integer"
    if any(word in declared for word in ("real", "double", "float", "numeric")):
        return "real"
    return "text"


async def columns(tx: Tx, section: Section) -> dict[str, Column]:
    """The table's columns a document may carry (those not ``assigned``), by name."""
    found: list[Column] = []
    if tx.dialect.name == "sqlite":
        for row in await tx.all(f"PRAGMA table_info({section.table})"):
            # A key column is required even where SQLite, for old times' sake, would take a NULL in it.
            required = (bool(row["notnull"]) or int(row["pk"]) > 0) and row["dflt_value"] is None
            found.append(Column(str(row["name"]), _kind(str(row["type"])), required))
    else:
        rows = await tx.all(
            "SELECT column_name, data_type, is_nullable, column_default, is_identity "
            "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?",
            (section.table,),
        )
        for row in rows:
            required = row["is_nullable"] == "NO" and row["column_default"] is None
            found.append(Column(str(row["column_name"]), _kind(str(row["data_type"])), required))
    return {c.name: c for c in found if c.name not in section.assigned}


async def schema(tx: Tx) -> dict[str, dict[str, Column]]:
    """Every section's columns, by member name."""
    return {section.member: await columns(tx, section) for section in (SESSION, *SECTIONS)}
