"""The report of ``python -m bench peers``: the run's figures as JSON (``peers.json``) and as markdown
tables (``peers.md``), every figure beside its ratio to Parley's in the same run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASELINE = "parley"
# The keys each workload's figures have, per contender (the smoke test holds the JSON to them).
KEYS: dict[str, tuple[str, ...]] = {
    "sequential": ("p50_ms", "p99_ms", "samples", "errors"),
    "throughput": ("turns_per_s", "p50_ms", "p99_ms", "turns", "sessions", "concurrency", "errors"),
    "background": ("p50_ms", "p99_ms", "samples", "errors"),
    "race": (
        "sent",
        "accepted",
        "refused",
        "completed",
        "in_state",
        "twice_in_state",
        "serialised",
        "in_accepted_order",
    ),
    "crash": (
        "completed",
        "final_status",
        "effect_runs",
        "restart_ready_s",
        "kill_to_done_s",
        "recovery_overhead_s",
    ),
}


def _ratio(value: float | None, base: float | None) -> str:
    return "" if value is None or not base else f"{value / base:.2f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _contenders(report: dict[str, Any]) -> list[str]:
    names: list[str] = report["contenders"]
    return names


def _latency_table(report: dict[str, Any], workload: str) -> list[str]:
    rows = report["workloads"][workload]
    base = rows[BASELINE]
    lines = [
        "| contender | p50 ms | p50 ÷ Parley | p99 ms | p99 ÷ Parley | failed |",
        "|---|---|---|---|---|---|",
    ]
    for name in _contenders(report):
        r = rows[name]
        lines.append(
            f"| {name} | {_num(r['p50_ms'])} | {_ratio(r['p50_ms'], base['p50_ms'])} | {_num(r['p99_ms'])} | "
            f"{_ratio(r['p99_ms'], base['p99_ms'])} | {_failed(r)} |"
        )
    return lines


def _failed(row: dict[str, Any]) -> str:
    """How many requests failed, and the first failure."""
    return f"{row['errors']} ({row['first_error']})" if row.get("errors") else "0"


def _throughput_table(report: dict[str, Any]) -> list[str]:
    rows = report["workloads"]["throughput"]
    base = rows[BASELINE]
    lines = [
        "| contender | turns/s | ÷ Parley | p99 ms | p99 ÷ Parley | failed |",
        "|---|---|---|---|---|---|",
    ]
    for name in _contenders(report):
        r = rows[name]
        lines.append(
            f"| {name} | {r['turns_per_s']:.1f} | {_ratio(r['turns_per_s'], base['turns_per_s'])} | "
            f"{_num(r['p99_ms'], 0)} | {_ratio(r['p99_ms'], base['p99_ms'])} | {_failed(r)} |"
        )
    return lines


def _race_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| contender | busy thread | accepted | refused | completed | in the state | twice | turns serialised | in accepted order |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, policy in (("race", "default"), ("race_enqueue", "enqueue")):
        for name, r in report["workloads"].get(key, {}).items():
            if not isinstance(r, dict):
                continue
            if "error" in r:
                lines.append(f"| {name} | {policy} | failed: {r['error'][:100]} | | | | | | |")
                continue
            label = "enqueue (default)" if name.startswith("parley") else policy
            lines.append(
                f"| {name} | {label} | {r['accepted']}/{r['sent']} | {r['refused']} | {r['completed']} | "
                f"{r['in_state']}/{r['sent']} | {r['twice_in_state']} | {'yes' if r['serialised'] else 'no'} | "
                f"{'yes' if r['in_accepted_order'] else 'no'} |"
            )
    return lines


def _crash_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| contender | turn completed | final status | side-effect runs | restart → ready s | kill → done s | recovery beyond the model's own time s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in report["workloads"]["crash"].items():
        if "error" in r:
            lines.append(f"| {name} | no | {r['error'][:80]} | | | | |")
            continue
        lines.append(
            f"| {name} | {'yes' if r['completed'] else 'no'} | {r['final_status'][:60]} | {r['effect_runs']} | "
            f"{r['restart_ready_s']} | {r['kill_to_done_s'] if r['kill_to_done_s'] is not None else '—'} | "
            f"{r['recovery_overhead_s'] if r['recovery_overhead_s'] is not None else '—'} |"
        )
    return lines


def _long_table(report: dict[str, Any]) -> list[str]:
    long = report["long_session"]
    lines = [
        f"| graph (through `parley serve`, SQLite) | turn 10 ms | last 10 turns ms | growth | ÷ assistant | stored MB after {long['turns']} turns | ÷ assistant |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("assistant", "plain"):
        r = long[name]
        lines.append(
            f"| {name} | {r['turn_10_ms']:.1f} | {r['last_10_ms']:.1f} | {r['growth_last_over_turn_10']:.2f} | "
            f"{r['last_10_vs_assistant']:.2f} | {r['stored_mb']:.1f} | {r['stored_vs_assistant']} |"
        )
    return lines


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    sizes = report["sizes"]
    out = [
        f"Machine: {m['cores']} cores, {m['memory_gb']} GB, {m['platform']}; load average {m['load_average_at_start']} "
        f"at the start, {m.get('load_average_at_end')} at the end; the run took {report.get('seconds')} s.",
        "",
        "Versions: "
        + "; ".join(
            f"{env}: " + ", ".join(f"{k} {v}" for k, v in found.items())
            for env, found in report["versions"].items()
        ),
        "",
    ]
    for name, why in report["not_run"].items():
        out.append(f"Not measured: **{name}** — {why.splitlines()[0] if why else ''}")
    out += [
        "",
        f"### Sequential inline turns ({sizes['sequential']} per contender)",
        "",
        *_latency_table(report, "sequential"),
    ]
    out += [
        "",
        f"### Throughput ({sizes['sessions'] * sizes['per_session']} turns over {sizes['sessions']} sessions at concurrency {sizes['concurrency']})",
        "",
        *_throughput_table(report),
    ]
    out += [
        "",
        f"### Background turn, submit → done ({sizes['background']} per contender)",
        "",
        *_latency_table(report, "background"),
    ]
    out += ["", f"### {sizes['race']} messages at once to one session", "", *_race_table(report)]
    out += ["", "### SIGKILL in the middle of a background turn, then a restart", "", *_crash_table(report)]
    out += [
        "",
        "### One long session: the bundled assistant against a plain `MessagesState` graph",
        "",
        *_long_table(report),
    ]
    return "\n".join(out) + "\n"


def write(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    as_json = out / "peers.json"
    as_md = out / "peers.md"
    as_json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    as_md.write_text(markdown(report), encoding="utf-8")
    return as_json, as_md
