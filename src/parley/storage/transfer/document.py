"""The session document: its members, their order, the canonical JSON of each part, and its checksum.

One JSON object whose members come in ``MEMBERS`` order. The lists (rows of Parley's tables,
checkpoints) are written and read an item at a time, so neither side holds more than one item. The
checksum is SHA-256 over the canonical JSON of every member but ``checksum`` itself, fed part by part
(``Checksum``): the exporter computes it while it streams, the importer while it parses — so it holds
whatever whitespace or key order the document arrives in, and any change of a value breaks it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

FORMAT = "parley.session"
VERSION = 1
"""The version this code writes and the newest it reads. A change that an older reader would
misread increments it; an older reader refuses a newer document (422) instead of guessing."""

ARRAYS = ("messages", "transcript", "interrupts", "actions", "message_events", "checkpoints")
MEMBERS = ("format", "version", "graph", "exported_at", "session", *ARRAYS, "checksum")
ROW_ARRAYS = ARRAYS[:-1]
"""The members holding rows of Parley's tables (each is a list of objects, column → value)."""

CHECKSUM_ALGORITHM = "sha256"


def canonical(value: Any) -> bytes:
    """The one JSON text of ``value`` both sides hash (and the exporter writes): keys sorted, no spaces,
    UTF-8. It never holds a raw newline, which ``Checksum`` uses to frame the parts."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


class Checksum:
    """SHA-256 over the document's parts, fed in document order."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def member(self, key: str, value: Any) -> None:
        """A member whose value is not a list."""
        self._hash.update(b"=" + canonical(key) + b"\n" + canonical(value) + b"\n")

    def start(self, key: str) -> None:
        """The start of a list member."""
        self._hash.update(b"[" + canonical(key) + b"\n")

    def item(self, value: Any) -> None:
        """One item of the current list."""
        self._hash.update(canonical(value) + b"\n")

    def end(self) -> None:
        """The end of the current list."""
        self._hash.update(b"]\n")

    def hexdigest(self) -> str:
        """The checksum so far."""
        return self._hash.hexdigest()


class DocumentError(ValueError):
    """What is wrong with a document, and where (``loc``: the path to the part at fault)."""

    def __init__(self, detail: str, *, loc: list[str | int]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.loc = loc
