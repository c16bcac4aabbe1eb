"""The local model's evaluation set (bench/local_quality.json) and how a reply is judged against it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.models.repetition import loop_cut
from parley.settings import DEFAULT_SYSTEM_PROMPT

CASES_FILE = Path(__file__).with_name("local_quality.json")
# The local model's settings before they were measured: llama-cpp-python's chat defaults (temperature 0.2,
# top-k 40, top-p 0.95, no repeat penalty, a random seed), Parley's own system prompt, no repetition stop.
OLD_SETTINGS: dict[str, Any] = {
    "system_prompt": DEFAULT_SYSTEM_PROMPT,
    "local_temperature": 0.2,
    "local_top_k": 40,
    "local_top_p": 0.95,
    "local_repeat_penalty": 1.0,
    "local_seed": -1,
    "local_loop_repeats": 0,
}


def as_env(settings: dict[str, Any]) -> dict[str, str]:
    """``PARLEY_*`` environment variables for settings given by field name."""
    return {f"PARLEY_{name.upper()}": str(value) for name, value in settings.items()}


_WORDS = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Group:
    """At least ``at_least`` of ``alternatives`` must appear in the reply."""

    alternatives: tuple[str, ...]
    at_least: int = 1


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    turns: tuple[str, ...]
    expect: tuple[Group, ...]


def _group(raw: Any) -> Group:
    if isinstance(raw, list):
        return Group(tuple(raw))
    return Group(tuple(raw["any"]), int(raw.get("at_least", 1)))


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    data = json.loads(path.read_text())
    return [
        Case(c["id"], c["kind"], tuple(c["turns"]), tuple(_group(g) for g in c["expect"]))
        for c in data["cases"]
    ]


def _contains(text: str, word: str) -> bool:
    # Whole words, case-insensitively: "0" must not be found in "100", nor "hi" in "this"; a number not
    # in another one either ("0" in "-18.0" or "0.5").
    if word.isdigit():
        return re.search(rf"(?<![\w.,-]){word}(?![\w]|[.,]\d)", text) is not None
    return re.search(rf"(?<!\w){re.escape(word.casefold())}(?!\w)", text) is not None


def passes(case: Case, reply: str) -> bool:
    text = reply.casefold()
    return all(sum(_contains(text, alt) for alt in g.alternatives) >= g.at_least for g in case.expect)


def loops(reply: str) -> bool:
    """Whether the reply shows a repetition loop: a 5-word phrase (punctuation counts as a word) four times
    in a row — as a reader sees it, whatever the model's tokens were."""
    return loop_cut(_WORDS.findall(reply), ngram=5, repeats=4, window=40) is not None
