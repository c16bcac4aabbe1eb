"""What a graph's author writes next to the graph to tell Parley how to host it.

A graph whose state has a ``messages`` key, and a Functional API ``@entrypoint`` taking
``{"messages": [...]}``, need nothing. Any other state says how the user's text enters it and where the
reply is read::

    from parley.hosting import host

    bot = host(builder, input="question", reply="answer")
    # or with functions: input=lambda text: {"question": text, "lang": "en"},
    #                    reply=lambda state: state["answer"]["text"]

and is served with ``PARLEY_GRAPHS=qa=mymodule:bot``. See docs/graphs.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from parley.core.programs import Hosted, InputFn, ReplyFn
from parley.core.statuses import InterruptKind

__all__ = ["Hosted", "host"]


def host(
    graph: Any,
    *,
    input: str | InputFn | None = None,
    reply: str | ReplyFn | None = None,
    interrupts: Iterable[str] | None = None,
    description: str = "",
) -> Hosted:
    """``graph`` (a ``StateGraph``, a compiled graph, an ``@entrypoint``, or a factory of one) as Parley
    hosts it.

    - ``input``: the state key the user's text is written to, or a function ``text -> graph input``.
    - ``reply``: the state key the reply is read from (a string, a message, or a list of messages — the
      last AI message), or a function ``values -> str | None``.
    - ``interrupts``: the interrupt kinds the graph may raise (``confirm``, ``input``, ``review``),
      listed by ``GET /v1/graphs``; None says nothing about them.
    - ``description``: one line for ``GET /v1/graphs``.
    """
    kinds: tuple[str, ...] | None = None
    if interrupts is not None:
        kinds = tuple(InterruptKind(kind).value for kind in interrupts)
    return Hosted(graph=graph, input=input, reply=reply, interrupts=kinds, description=description)
