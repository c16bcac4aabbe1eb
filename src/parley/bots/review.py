"""The review policy: which drafts an operator must see before the user does."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import BaseMessage, ToolMessage


@dataclass(frozen=True)
class ReviewPolicy:
    """Flag a draft that mentions a sensitive topic, or follows a tool result over an amount limit."""

    keywords: tuple[str, ...]
    amount_limit: float

    def reasons(self, *, draft: str, question: str, tool_results: Sequence[BaseMessage]) -> list[str]:
        """Why the draft needs review; empty when it does not."""
        found: list[str] = []
        text = f"{question}\n{draft}".lower()
        for keyword in self.keywords:
            if keyword.lower() in text:
                found.append(f"mentions '{keyword}'")
        for result in tool_results:
            if not isinstance(result, ToolMessage):
                continue
            try:
                data = json.loads(str(result.content))
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            for key in ("amount", "total"):
                value = data.get(key)
                if isinstance(value, int | float) and value > self.amount_limit:
                    tool = result.name or "a tool"
                    found.append(f"{tool} {key} {value:g} is over the review limit {self.amount_limit:g}")
        return found
