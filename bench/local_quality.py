"""The offline local model's answers, judged: every case of bench/local_quality.json through two real
``parley serve`` processes — one with the settings in use (Parley's defaults), one with the old ones
(llama-cpp-python's defaults: temperature 0.2, no repeat penalty, a random seed; Parley's system prompt; no
repetition stop) — asked in alternation, case by case, over HTTP as a client would.

For each: the pass rate, the share of replies that show a repetition loop (as a reader sees them), the share
the repetition stop cut (from the server's log), the share that ran to the token limit, and the model's time
to first token and tokens per second as the service records them in each message's ``usage``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import httpx

from bench.common import Server
from bench.quality import OLD_SETTINGS, Case, as_env, load_cases, loops, passes
from parley.settings import Settings

_CUT_LOG = "local model: reply cut"


def _server(data_dir: Path, **env: str) -> Server:
    # Logs at info: the repetition stop says so there, which is how cut replies are counted.
    return Server(
        ["-m", "parley.cli", "serve", "--port", "{port}", "--data-dir", str(data_dir), "--log-level", "info"],
        env={"PARLEY_MODEL": "local", "PARLEY_LOG_FORMAT": "text", "PARLEY_MAX_WAIT": "300", **env},
        ready_path="/readyz",
    )


def _ask(client: httpx.Client, case: Case) -> dict[str, Any]:
    """Every turn of the case in one session; the last message resource."""
    session: str | None = None
    body: dict[str, Any] = {}
    for turn in case.turns:
        request: dict[str, Any] = {"user_id": "bench", "message": turn, "wait": 300}
        if session is not None:
            request["session_id"] = session
        body = client.post("/v1/chat", json=request).json()
        assert body.get("status") == "completed", body
        session = body["session_id"]
    return body


def _summary(rows: list[dict[str, Any]], *, cuts: int, max_tokens: int) -> dict[str, Any]:
    n = len(rows)
    usage = [r["usage"] for r in rows]
    ttft = [u["first_token_seconds"] for u in usage if u.get("first_token_seconds") is not None]
    rates = [
        (u["output_tokens"] - 1) / (u["model_seconds"] - u["first_token_seconds"])
        for u in usage
        if u["output_tokens"] > 1 and u.get("first_token_seconds") is not None
    ]
    return {
        "pass_rate": round(sum(r["pass"] for r in rows) / n, 3),
        "loop_rate": round(sum(r["loops"] for r in rows) / n, 3),
        "cut_rate": round(cuts / n, 3),
        "length_rate": round(sum(u["output_tokens"] >= max_tokens for u in usage) / n, 3),
        "time_to_first_token_ms": round(statistics.median(ttft) * 1000, 1),
        "tokens_per_second": round(statistics.median(rates), 1),
        "median_reply_tokens": statistics.median(u["output_tokens"] for u in usage),
        "failed": [r["id"] for r in rows if not r["pass"]],
    }


def _cuts(server: Server) -> int:
    server.log.seek(0)
    return server.log.read().decode(errors="replace").count(_CUT_LOG)


def run(workdir: Path, *, verbose: bool = False) -> dict[str, Any]:
    cases = load_cases()
    max_tokens = Settings().local_max_tokens
    rows: dict[str, list[dict[str, Any]]] = {"chosen": [], "old": []}
    with (
        _server(workdir / "quality-chosen") as chosen,
        _server(workdir / "quality-old", **as_env(OLD_SETTINGS)) as old,
        httpx.Client(base_url=chosen.url, timeout=300) as chosen_client,
        httpx.Client(base_url=old.url, timeout=300) as old_client,
    ):
        clients = {"chosen": chosen_client, "old": old_client}
        _ask(chosen_client, cases[0])  # warm-up: the first turn also builds the graph's caches
        _ask(old_client, cases[0])
        for i, case in enumerate(cases):
            # Alternating which goes first, so that the machine's drifting load hits both alike.
            for name in ("chosen", "old") if i % 2 == 0 else ("old", "chosen"):
                body = _ask(clients[name], case)
                reply = body["reply"] or ""
                rows[name].append(
                    {
                        "id": case.id,
                        "pass": passes(case, reply),
                        "loops": loops(reply),
                        "usage": body["usage"],
                    }
                )
                if verbose:
                    print(
                        f"  {name:6} {'PASS' if rows[name][-1]['pass'] else 'fail'} {case.id}: {reply[:140]!r}"
                    )
        cuts = {"chosen": _cuts(chosen), "old": _cuts(old)}
    result = {
        name: _summary(rows[name], cuts=cuts[name], max_tokens=max_tokens) for name in ("chosen", "old")
    }
    result["cases"] = len(cases)
    return result


def summary_line(r: dict[str, Any]) -> str:
    c, o = r["chosen"], r["old"]
    return (
        f"local quality ({r['cases']} cases): pass rate {c['pass_rate']:.2f} with the settings in use vs "
        f"{o['pass_rate']:.2f} with the old ones  [target >= 0.7]; replies showing a loop {c['loop_rate']:.2f} "
        f"vs {o['loop_rate']:.2f}  [target 0] (cut by the repetition stop: {c['cut_rate']:.2f}); at the token "
        f"limit {c['length_rate']:.2f} vs {o['length_rate']:.2f}; first token {c['time_to_first_token_ms']} vs "
        f"{o['time_to_first_token_ms']} ms; {c['tokens_per_second']} vs {o['tokens_per_second']} tok/s"
    )


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        print(json.dumps(run(Path(tmp), verbose="-v" in sys.argv), indent=2))
