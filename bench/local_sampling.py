"""Explore the local model's sampling settings on the evaluation set, in-process (no server): each candidate
runs every case of bench/local_quality.json through ``LocalChatModel`` — the service's own code path, the
repetition stop included — and gets its pass rate, the share of replies the repetition stop cut, the share
still showing a loop, and the share that ran to the token limit.

``python -m bench.local_sampling [NAME ...] [--seeds 1 2 3]``; the figures went to bench/README.md. The
candidates' names are the keys of ``CANDIDATES``; with no name, all of them (about 20 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from bench.quality import Case, load_cases, loops, passes
from parley.models.local import LocalChatModel, bundled_model_path
from parley.settings import DEFAULT_SYSTEM_PROMPT

MAX_TOKENS = 256  # the service's default (PARLEY_LOCAL_MAX_TOKENS)
# SmolLM2's own default (its chat template's), which the issue's hand runs found better than Parley's.
SMOLLM_SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
_PROMPTS = {
    "parley": DEFAULT_SYSTEM_PROMPT,
    "smollm": SMOLLM_SYSTEM_PROMPT,
    "smollm-en": "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Answer in English, briefly.",
    "parley-en": DEFAULT_SYSTEM_PROMPT + " Answer in English.",
    "none": "",
}
# llama-cpp-python's create_chat_completion defaults, which the service used before (no repeat penalty,
# a random seed, no repetition stop) and Parley's own system prompt.
OLD: dict[str, Any] = {
    "temperature": 0.2,
    "top_k": 40,
    "top_p": 0.95,
    "repeat_penalty": 1.0,
    "seed": None,
    "loop_repeats": 0,
    "prompt": "parley",
}


def _candidate(**changes: Any) -> dict[str, Any]:
    return {**OLD, "seed": 42, "loop_repeats": 4, **changes}


CANDIDATES: dict[str, dict[str, Any]] = {
    "old": OLD,
    "old+stop": {**OLD, "loop_repeats": 4},
    "t0": _candidate(temperature=0.0),
    "t0-rp1.1": _candidate(temperature=0.0, repeat_penalty=1.1),
    "t0-rp1.2": _candidate(temperature=0.0, repeat_penalty=1.2),
    "t0-rp1.3": _candidate(temperature=0.0, repeat_penalty=1.3),
    "t0-smollm": _candidate(temperature=0.0, prompt="smollm"),
    "t0-rp1.1-smollm": _candidate(temperature=0.0, repeat_penalty=1.1, prompt="smollm"),
    "t0-rp1.2-smollm": _candidate(temperature=0.0, repeat_penalty=1.2, prompt="smollm"),
    "t0-rp1.3-smollm": _candidate(temperature=0.0, repeat_penalty=1.3, prompt="smollm"),
    "t0.2-rp1.1-smollm": _candidate(repeat_penalty=1.1, prompt="smollm"),
    "t0.2-rp1.2-smollm": _candidate(repeat_penalty=1.2, prompt="smollm"),
    "t0.2-rp1.3-smollm": _candidate(repeat_penalty=1.3, prompt="smollm"),
    "t0.2-rp1.2-parley": _candidate(repeat_penalty=1.2),
    "t0.4-rp1.2-smollm": _candidate(temperature=0.4, repeat_penalty=1.2, prompt="smollm"),
    "t0.2-rp1.2-k20-p0.9-smollm": _candidate(repeat_penalty=1.2, top_k=20, top_p=0.9, prompt="smollm"),
    "t0-rp1.2-none": _candidate(temperature=0.0, repeat_penalty=1.2, prompt="none"),
    "t0-rp1.05": _candidate(temperature=0.0, repeat_penalty=1.05),
    "t0-rp1.15": _candidate(temperature=0.0, repeat_penalty=1.15),
    "t0-rp1.1-parley-en": _candidate(temperature=0.0, repeat_penalty=1.1, prompt="parley-en"),
    "t0.2-rp1.1": _candidate(repeat_penalty=1.1),
    "t0.2-rp1.1-k20-p0.9": _candidate(repeat_penalty=1.1, top_k=20, top_p=0.9),
    "t0-rp1.1-smollm-en": _candidate(temperature=0.0, repeat_penalty=1.1, prompt="smollm-en"),
    "t0-rp1.2-smollm-en": _candidate(temperature=0.0, repeat_penalty=1.2, prompt="smollm-en"),
    "t0.2-rp1.1-smollm-en": _candidate(repeat_penalty=1.1, prompt="smollm-en"),
}


def _model(config: dict[str, Any]) -> LocalChatModel:
    model = LocalChatModel(
        model_path=bundled_model_path(),
        max_tokens=MAX_TOKENS,
        temperature=config["temperature"],
        top_k=config["top_k"],
        top_p=config["top_p"],
        repeat_penalty=config["repeat_penalty"],
        seed=config["seed"],
        loop_repeats=config["loop_repeats"],
        pool_size=1,
        threads_per_instance=2,
    )
    model.load()
    return model


def _conversation(model: LocalChatModel, system: str, case: Case) -> AIMessage:
    """Every turn of the case in one conversation, as the assistant sends them; the last reply."""
    history: list[BaseMessage] = [SystemMessage(system)] if system else []
    reply = AIMessage("")
    for turn in case.turns:
        history.append(HumanMessage(turn))
        result = model.invoke(history)
        assert isinstance(result, AIMessage)
        reply = result
        history.append(reply)
    return reply


def evaluate(config: dict[str, Any], *, verbose: bool = False) -> dict[str, Any]:
    model = _model(config)
    cases = load_cases()
    rows = []
    started = time.perf_counter()
    for case in cases:
        reply = _conversation(model, _PROMPTS[config["prompt"]], case)
        text = str(reply.content)
        finish = reply.response_metadata.get("finish_reason")
        rows.append(
            {
                "id": case.id,
                "pass": passes(case, text),
                "cut": finish == "repetition",
                "loops": loops(text),
                "length": finish == "length",
                "tokens": (reply.usage_metadata or {}).get("output_tokens", 0),
            }
        )
        if verbose:
            print(f"  {'PASS' if rows[-1]['pass'] else 'fail'} {case.id} [{finish}] {text[:160]!r}")
    n = len(rows)
    return {
        "pass_rate": round(sum(r["pass"] for r in rows) / n, 3),
        "cut_rate": round(sum(r["cut"] for r in rows) / n, 3),
        "loop_rate": round(sum(r["loops"] for r in rows) / n, 3),
        "length_rate": round(sum(r["length"] for r in rows) / n, 3),
        "median_tokens": statistics.median(r["tokens"] for r in rows),
        "seconds": round(time.perf_counter() - started, 1),
        "failed": [r["id"] for r in rows if not r["pass"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.local_sampling")
    parser.add_argument("names", nargs="*", default=list(CANDIDATES))
    parser.add_argument("--seeds", type=int, nargs="+", help="run each candidate with these seeds instead")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every reply")
    args = parser.parse_args()
    for name in args.names:
        config = CANDIDATES[name]
        for seed in args.seeds or [config["seed"]]:
            result = evaluate({**config, "seed": seed}, verbose=args.verbose)
            print(json.dumps({"candidate": name, "seed": seed, **result}), flush=True)


if __name__ == "__main__":
    main()
