"""What an end user may see of an interrupt: the one place where operator-only payloads are redacted.

An interrupt of an operator-only kind (``InterruptKind.REVIEW``) carries what the user must not see
before an operator has decided — the assistant puts the draft reply and the reasons it was flagged in
it. Storage keeps the whole payload (operators need it), and every representation built for a reader
passes through ``interrupt_for_viewer``: an operator gets the interrupt as stored; anyone else gets its
id and kind with a fixed notice in place of the value. Nothing of the stored value is copied through, so
a graph that puts another sensitive field in its review payload is covered too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from parley.core.statuses import InterruptKind

REVIEW_NOTICE = "Your answer is being reviewed by an operator."
"""What an end user reads in place of an operator-only interrupt's value."""


def operator_only_kind(interrupt: Mapping[str, Any]) -> InterruptKind | None:
    """The operator-only kind of an interrupt (``{id, value, kind}``), or None if a user may see it.

    Both its recorded kind and its value's own ``kind`` count, so neither a record without a kind nor
    a kind field that disagrees with the payload can let a review through.
    """
    recorded = interrupt.get("kind")
    candidates = [InterruptKind.of(interrupt.get("value"))]
    if isinstance(recorded, str):
        candidates.append(InterruptKind.of({"kind": recorded}))
    return next((kind for kind in candidates if kind.operator_only), None)


def interrupt_for_viewer(interrupt: Mapping[str, Any], *, operator: bool) -> dict[str, Any]:
    """The interrupt as an operator (``operator=True``) or an end user may see it."""
    hidden = None if operator else operator_only_kind(interrupt)
    if hidden is None:
        return dict(interrupt)
    return {
        "id": interrupt.get("id"),
        "kind": hidden.value,
        "value": {"kind": hidden.value, "question": REVIEW_NOTICE},
    }


def interrupts_for_viewer(
    interrupts: Iterable[Mapping[str, Any]] | None, *, operator: bool
) -> list[dict[str, Any]] | None:
    """``interrupt_for_viewer`` of each; None stays None (a message that did not pause)."""
    if interrupts is None:
        return None
    return [interrupt_for_viewer(i, operator=operator) for i in interrupts]
