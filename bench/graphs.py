"""What hosting several graphs, and other kinds of program, costs a turn: the same one-step echo bot
(``bench/program_graphs.py``) served as

- ``single``: a ``StateGraph``, the one graph of its service (``PARLEY_GRAPH``) — the baseline;
- ``several``: that ``StateGraph`` as the last of three graphs of one service (``PARLEY_GRAPHS``), its
  sessions created with ``graph`` — what choosing a session's graph costs (one read per turn);
- ``functional``: a Functional API ``@entrypoint`` whose ``previous`` carries the conversation;
- ``mapped``: a state without ``messages``, through its mapping.

Four ``parley serve`` on SQLite with the scripted model, started together and asked in alternation,
request by request (``bench.common.measure_alternating``), so that the machine's drifting load hits all
alike: an inline chat turn and a read of the session each time.
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import measure_alternating, parley_server

_GRAPHS = "bench.program_graphs"


def run(workdir: Path, *, turns: int = 500) -> dict[str, Any]:
    """Alternate ``turns`` chat turns and session reads between the four."""
    several = f"mapped={_GRAPHS}:mapped_echo,functional={_GRAPHS}:functional_echo,echo={_GRAPHS}:state_echo"
    with ExitStack() as stack:
        servers = {
            "single": stack.enter_context(
                parley_server(workdir / "graphs-single", PARLEY_GRAPH=f"{_GRAPHS}:state_echo")
            ),
            "several": stack.enter_context(parley_server(workdir / "graphs-several", PARLEY_GRAPHS=several)),
            "functional": stack.enter_context(
                parley_server(workdir / "graphs-functional", PARLEY_GRAPHS=f"f={_GRAPHS}:functional_echo")
            ),
            "mapped": stack.enter_context(
                parley_server(workdir / "graphs-mapped", PARLEY_GRAPHS=f"m={_GRAPHS}:mapped_echo")
            ),
        }
        contenders = {name: (server.url, {}) for name, server in servers.items()}
        return asyncio.run(
            measure_alternating(
                contenders, turns=turns, baseline="single", first_message={"several": {"graph": "echo"}}
            )
        )


def summary_line(r: dict[str, Any]) -> str:
    """The one line ``python -m bench`` prints."""
    parts = [
        f"{name} {r[f'{name}_chat_p50_ms']:.2f} ms ({r[f'{name}_chat_p50_ratio']:.2f}x)"
        for name in ("several", "functional", "mapped")
    ]
    return (
        f"graphs: chat turn p50, one StateGraph alone {r['single_chat_p50_ms']:.2f} ms; "
        + ", ".join(parts)
        + "  [target: several <= 1.05x]"
    )
