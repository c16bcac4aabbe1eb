"""Export and import of whole sessions: time, document size and server memory for sessions of N turns.

A session of N turns is built through ``parley serve`` (SQLite, the bundled assistant with the scripted
model); it is exported over HTTP into a file, and imported over HTTP into a second ``parley serve`` on
another data dir — and into one on PostgreSQL where a server answers. The baseline, measured in the same
run, is copying the source's data files (what moving the session's bytes costs at the least). The
imported copy is exported again and compared with the first document (the round trip is exact).
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench import scaleout
from bench.common import PostgresDatabases, Server, parley_server

OPERATOR = {"X-User-Id": "bench-operator", "X-Role": "operator"}
PER_EXPORT = ("exported_at", "checksum")


def _memory_mb(server: Server, field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (the peak so far) of the server process, in MB."""
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _build(client: httpx.Client, turns: int) -> str:
    sid = None
    for i in range(1, turns + 1):
        body: dict[str, Any] = {"user_id": "bench", "message": f"message number {i}", "wait": 30}
        if sid:
            body["session_id"] = sid
        response = client.post("/v1/chat", json=body)
        assert response.status_code == 200 and response.json()["status"] == "completed", response.text
        sid = response.json()["session_id"]
    assert sid is not None
    return sid


def _export(client: httpx.Client, sid: str, path: Path) -> float:
    started = time.perf_counter()
    with client.stream("GET", f"/v1/sessions/{sid}/export", headers=OPERATOR) as response:
        assert response.status_code == 200, response.read()
        with path.open("wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
    return time.perf_counter() - started


def _import(server: Server, path: Path) -> dict[str, float]:
    with httpx.Client(base_url=server.url, timeout=None) as client:
        before = _memory_mb(server, "VmRSS")
        started = time.perf_counter()
        with path.open("rb") as document:
            response = client.post(
                "/v1/sessions/import",
                content=document,
                headers={**OPERATOR, "Content-Type": "application/json"},
            )
        seconds = time.perf_counter() - started
        assert response.status_code == 201, response.text
    return {"seconds": seconds, "rss_before_mb": before, "peak_rss_mb": _memory_mb(server, "VmHWM")}


def _same(first: Path, second: Path) -> bool:
    def content(path: Path) -> dict[str, Any]:
        with path.open("rb") as f:
            parsed: dict[str, Any] = json.load(f)
        return {k: v for k, v in parsed.items() if k not in PER_EXPORT}

    return content(first) == content(second)


def run(workdir: Path, *, sizes: tuple[int, ...] = (10, 1000)) -> dict[str, Any]:
    postgres = scaleout.postgres_missing() is None
    results: dict[str, Any] = {"postgres": postgres}
    with ExitStack() as stack:
        databases = stack.enter_context(PostgresDatabases()) if postgres else None
        for turns in sizes:
            base = workdir / f"sessions-{turns}"
            env = {"PARLEY_OPERATOR_HEADER_ENABLED": "true"}
            document = base / "session.json"
            row: dict[str, Any] = {"turns": turns}
            with (
                parley_server(base / "source", **env) as source,
                httpx.Client(base_url=source.url, timeout=None) as client,
            ):
                started = time.perf_counter()
                sid = _build(client, turns)
                row["build_seconds"] = time.perf_counter() - started
                row["source_rss_before_export_mb"] = _memory_mb(source, "VmRSS")
                row["export_seconds"] = _export(client, sid, document)
                row["source_peak_rss_mb"] = _memory_mb(source, "VmHWM")
                started = time.perf_counter()
                shutil.copytree(base / "source", base / "copy", ignore=shutil.ignore_patterns("*.lock"))
                row["copy_data_files_seconds"] = time.perf_counter() - started
            row["document_bytes"] = document.stat().st_size
            row["data_dir_bytes"] = sum(f.stat().st_size for f in (base / "copy").iterdir())
            targets: dict[str, dict[str, str]] = {"sqlite": {}}
            if databases is not None:
                targets["postgres"] = {"PARLEY_DATABASE_URL": databases.create(f"sessions_{turns}")}
            for name, target_env in targets.items():
                with parley_server(base / f"into-{name}", **env, **target_env) as target:
                    row[f"import_{name}"] = _import(target, document)
                    with httpx.Client(base_url=target.url, timeout=None) as there:
                        again = base / f"again-{name}.json"
                        row[f"reexport_{name}_seconds"] = _export(there, sid, again)
                    row[f"round_trip_{name}_exact"] = _same(document, again)
            row["export_per_copy"] = row["export_seconds"] / row["copy_data_files_seconds"]
            row["import_sqlite_per_copy"] = row["import_sqlite"]["seconds"] / row["copy_data_files_seconds"]
            results[str(turns)] = row
            shutil.rmtree(base / "copy")
    return results
