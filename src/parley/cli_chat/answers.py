"""Asking a person at the prompt for the answer to an interrupt, as the value ``resume`` sends.

The values are those the bundled assistant reads (docs/api.md, "The bundled assistant's interrupts"):
a ``confirm`` is answered ``{"decision": "approve"}``, ``{"decision": "reject", "reason": …}`` or
``{"decision": "edit", "args": {…}}``; an ``input`` with the text typed; a ``breakpoint`` goes on with
any value. A ``review`` is an operator's to answer, never asked here.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any, Protocol


class Prompt(Protocol):
    """What asking needs of the console."""

    def read(self, prompt: str) -> str | None: ...

    def say(self, text: str) -> None: ...


@dataclass(frozen=True)
class Answer:
    """The value to resume an interrupt with."""

    value: Any


QUIT_WORDS = frozenset({"/quit", "/exit"})
_APPROVE = frozenset({"a", "approve", "y", "yes"})
_REJECT = frozenset({"r", "reject", "n", "no"})
_EDIT = frozenset({"e", "edit"})


def question_of(interrupt: dict[str, Any]) -> str:
    """What the interrupt asks, in words: its value's ``question``, else the value itself."""
    value = interrupt.get("value")
    if isinstance(value, dict) and isinstance(value.get("question"), str):
        return str(value["question"])
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def parse_edited_args(text: str) -> dict[str, Any] | None:
    """New arguments for an action: a JSON object, or ``key=value`` pairs (a value is read as JSON when
    it is JSON — ``quantity=2`` is the number 2 — and as text otherwise). None if it is neither."""
    text = text.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    if not words or any("=" not in word or word.startswith("=") for word in words):
        return None
    args: dict[str, Any] = {}
    for word in words:
        key, _, raw = word.partition("=")
        try:
            args[key] = json.loads(raw)
        except json.JSONDecodeError:
            args[key] = raw
    return args


def ask_answer(interrupt: dict[str, Any], console: Prompt) -> Answer | None:
    """Ask for the answer to one interrupt the user may answer; None if the person quit or input ended."""
    kind = interrupt.get("kind")
    value = interrupt.get("value")
    if isinstance(value, dict) and value.get("error"):
        console.say(f"(the previous answer was not understood: {value['error']})")
    if kind == "confirm":
        return _confirm(interrupt, console)
    if kind == "breakpoint":
        console.say(f"The turn paused at a breakpoint: {question_of(interrupt)}")
        line = console.read("press Enter to go on: ")
        return None if line is None or line.strip() in QUIT_WORDS else Answer(None)
    console.say(question_of(interrupt))
    while True:
        line = console.read("your answer: ")
        if line is None or line.strip() in QUIT_WORDS:
            return None
        if line.strip():
            return Answer(line)


def _confirm(interrupt: dict[str, Any], console: Prompt) -> Answer | None:
    value = interrupt.get("value")
    args = value.get("args") if isinstance(value, dict) else None
    console.say(question_of(interrupt))
    while True:
        line = console.read("approve, reject or edit? [a/r/e] ")
        if line is None or line.strip() in QUIT_WORDS:
            return None
        word = line.strip().lower()
        if word in _APPROVE:
            return Answer({"decision": "approve"})
        if word in _REJECT:
            reason = console.read("why (optional): ")
            if reason is None:
                return None
            if reason.strip():
                return Answer({"decision": "reject", "reason": reason.strip()})
            return Answer({"decision": "reject"})
        if word in _EDIT:
            edited = _edit(args, console)
            if edited is not None:
                return edited
            continue
        console.say("Type a (approve), r (reject) or e (edit).")


def _edit(args: Any, console: Prompt) -> Answer | None:
    if isinstance(args, dict):
        console.say(f"Arguments now: {json.dumps(args, ensure_ascii=False)}")
    while True:
        line = console.read("changes (key=value … or a JSON object; empty to go back): ")
        if line is None or not line.strip():
            return None
        changes = parse_edited_args(line)
        if changes:
            return Answer({"decision": "edit", "args": changes})
        console.say('Not understood: write e.g. quantity=1 or {"quantity": 1}.')
