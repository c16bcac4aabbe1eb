"""``python -m bench peers``'s options and its one call: run, then write the report and the plots."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from bench.common import REPO
from bench.peers import plots, report
from bench.peers.run import ALL, Sizes
from bench.peers.run import run as run_all

RESULTS = REPO / "bench" / "results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--contenders",
        nargs="+",
        choices=ALL,
        default=None,
        help=f"peers: which to run (default: {' '.join(ALL)})",
    )
    parser.add_argument(
        "--size",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="peers: workload sizes, e.g. sequential=100 sessions=100 long_turns=1000 "
        f"(keys: {' '.join(f.name for f in dataclasses.fields(Sizes))})",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="peers: where the report and plots go")


def sizes(args: argparse.Namespace) -> Sizes:
    chosen = Sizes.quick() if args.quick else Sizes()
    types = {f.name: type(getattr(chosen, f.name)) for f in dataclasses.fields(Sizes)}
    changes: dict[str, Any] = {}
    for item in args.size:
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"--size: unknown key {key!r} (keys: {' '.join(types)})")
        changes[key] = types[key](value)
    return dataclasses.replace(chosen, **changes)


def run(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    figures = run_all(workdir, names=args.contenders, sizes=sizes(args))
    as_json, as_md = report.write(figures, args.out)
    pngs = plots.write(figures, args.out)
    print(as_md.read_text(encoding="utf-8"), flush=True)
    return {
        "report": str(as_json),
        "markdown": str(as_md),
        "plots": [str(p) for p in pngs],
        "not_run": figures["not_run"],
    }
