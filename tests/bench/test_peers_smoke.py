"""The Parley side of every workload of ``python -m bench peers``, at tiny sizes, against a real ``parley
serve`` subprocess: the report (JSON and markdown) and the plots come out well-formed. The peers'
installs and the full run are a command (bench/README.md), never a test: CI must not depend on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.peers import plots, report
from bench.peers.run import Sizes, run

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_workload_reports_and_plots(tmp_path: Path) -> None:
    sizes = Sizes.quick()
    figures = run(tmp_path / "work", names=["parley"], sizes=sizes)
    as_json, as_md = report.write(figures, tmp_path / "out")
    pngs = plots.write(figures, tmp_path / "out")

    written = json.loads(as_json.read_text(encoding="utf-8"))
    assert written["contenders"] == ["parley"]
    assert written["not_run"] == {}
    for workload, keys in report.KEYS.items():
        row = written["workloads"][workload]["parley"]
        assert set(keys) <= set(row), (workload, row)
    # Errors are counted, not raised: a run where every turn failed would have every key above.
    for workload in ("sequential", "throughput", "background"):
        row = written["workloads"][workload]["parley"]
        assert row["errors"] == 0, (workload, row)
    for workload in ("sequential", "background"):
        assert written["workloads"][workload]["parley"]["samples"] > 0
    assert written["workloads"]["throughput"]["parley"]["turns_per_s"] > 0
    race = written["workloads"]["race"]["parley"]
    # Parley's promise: every message of the race is in the state once, in the order it was accepted.
    assert race["in_state"] == race["sent"] == race["completed"]
    assert race["twice_in_state"] == 0
    assert race["serialised"]
    assert race["in_accepted_order"]
    crash = written["workloads"]["crash"]["parley"]
    assert crash["completed"], crash
    assert crash["effect_runs"] == 1, crash
    assert written["workloads"]["throughput"]["parley"]["turns"] == sizes.sessions * sizes.per_session
    for graph in ("assistant", "plain"):
        long = written["long_session"][graph]
        assert len(long["latency_ms"]) == len(long["stored_bytes"]) == sizes.long_turns
    assert {"cores", "memory_gb"} <= set(written["machine"])
    assert "parley" in written["versions"]["parley"]

    text = as_md.read_text(encoding="utf-8")
    for heading in (
        "Sequential inline turns",
        "Throughput",
        "Background turn",
        "at once",
        "SIGKILL",
        "long session",
    ):
        assert heading in text
    assert [p.name for p in pngs] == ["peers-ratios.png", "peers-long-session.png"]
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG), png
        assert len(data) > 5000, png
