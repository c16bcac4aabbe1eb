"""The plots of ``python -m bench peers`` (PNG, matplotlib's Agg backend: no display needed), each a
ratio against a baseline of the same run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; must precede pyplot's import
import matplotlib.pyplot as plt

from bench.peers.report import BASELINE

ROLLING = 25


def _ratios_figure(report: dict[str, Any], path: Path) -> Path:
    """Each contender's figure over Parley's, per workload (log scale: the peers differ by orders)."""
    workloads = report["workloads"]
    measures = [
        ("sequential p50", "sequential", "p50_ms"),
        ("sequential p99", "sequential", "p99_ms"),
        ("background p50", "background", "p50_ms"),
        ("concurrent p99", "throughput", "p99_ms"),
        ("turns/s", "throughput", "turns_per_s"),
    ]
    names = report["contenders"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        # A figure a contender could not produce (every request failed) is drawn as nothing.
        ratios = [
            (workloads[w][name][k] or 0.0) / workloads[w][BASELINE][k] if workloads[w][BASELINE][k] else 0.0
            for _, w, k in measures
        ]
        xs = [m + index * width for m in range(len(measures))]
        bars = ax.bar(xs, ratios, width, label=name)
        ax.bar_label(bars, labels=[f"{r:.2g}" for r in ratios], fontsize=7)
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([m + 0.4 - width / 2 for m in range(len(measures))], [label for label, _, _ in measures])
    ax.set_ylabel("÷ Parley in the same run (log)")
    ax.set_title("Parley's peers serving the same graph: latency (lower is better), turns/s (higher)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _rolling_median(values: list[float], window: int) -> list[float]:
    out: list[float] = []
    for i in range(len(values)):
        chunk = sorted(values[max(0, i - window + 1) : i + 1])
        out.append(chunk[len(chunk) // 2])
    return out


def _long_session_figure(report: dict[str, Any], path: Path) -> Path:
    """Turn latency (÷ the assistant's turn 10) and stored bytes (÷ the assistant's at the same turn)."""
    long = report["long_session"]
    base_ms = long["assistant"]["turn_10_ms"]
    base_bytes = long["assistant"]["stored_bytes"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in ("assistant", "plain"):
        row = long[name]
        turns = list(range(1, len(row["latency_ms"]) + 1))
        left.plot(turns, [v / base_ms for v in _rolling_median(row["latency_ms"], ROLLING)], label=name)
        right.plot(turns, [b / a for b, a in zip(row["stored_bytes"], base_bytes, strict=True)], label=name)
    left.set_title(f"turn latency ÷ the assistant's at turn 10 (median of {ROLLING})")
    right.set_title("data directory bytes ÷ the assistant's at the same turn")
    for ax in (left, right):
        ax.set_xlabel("turn")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.legend(fontsize=8)
    fig.suptitle(
        "One session through parley serve (SQLite): bundled assistant vs plain MessagesState", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(report: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [
        _ratios_figure(report, out / "peers-ratios.png"),
        _long_session_figure(report, out / "peers-long-session.png"),
    ]
