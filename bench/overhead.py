"""What authentication, metrics and tracing cost: one Parley with all three on — API keys
(``PARLEY_AUTH=keys``, a ``service`` key), Prometheus metrics, OpenTelemetry set up but with no exporter
configured (``OTEL_EXPORTER_OTLP_ENDPOINT`` unset: the production default) — against the same Parley with
all three off (``PARLEY_AUTH=off``, ``PARLEY_METRICS_ENABLED=false``), in the same run.

Both are ``parley serve`` on SQLite with the scripted model, started together and asked in alternation,
request by request, so that the machine's drifting load hits both alike. Two kinds of request: an inline
chat turn (the whole path: authenticate, accept, run the graph, record, count, answer) and a read of the
session (``GET /v1/sessions/{id}``), where a fixed cost per request is a larger share. A third contender
has tracing *exporting* (to an OTLP/HTTP sink on a loopback port of this process): what spans cost once
someone collects them, for information.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO, parley_server, percentile

SESSIONS = 10
WARMUP = 40


class _Sink(BaseHTTPRequestHandler):
    """Takes OTLP/HTTP exports and drops them."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _otlp_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _create_key(data_dir: Path) -> str:
    """A ``service`` key made with the real CLI on the server's data, before it starts."""
    result = subprocess.run(
        [sys.executable, "-m", "parley.cli", "keys", "create", "--role", "service", "--name", "bench"],
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "PARLEY_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip().splitlines()[-1]


async def _measure(contenders: dict[str, tuple[str, dict[str, str]]], *, turns: int) -> dict[str, Any]:
    chat: dict[str, list[float]] = {name: [] for name in contenders}
    read: dict[str, list[float]] = {name: [] for name in contenders}
    async with httpx.AsyncClient(timeout=30) as client:
        sessions: dict[str, list[str]] = {name: [] for name in contenders}
        for i in range(turns + WARMUP):
            for name, (url, headers) in contenders.items():
                body: dict[str, Any] = {"user_id": "bench", "message": f"message {i}", "wait": 30}
                known = sessions[name]
                if len(known) == SESSIONS:
                    body["session_id"] = known[i % SESSIONS]
                started = asyncio.get_running_loop().time()
                response = await client.post(f"{url}/v1/chat", json=body, headers=headers)
                took_chat = asyncio.get_running_loop().time() - started
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "completed", response.text
                session_id = response.json()["session_id"]
                if len(known) < SESSIONS:
                    known.append(session_id)
                started = asyncio.get_running_loop().time()
                response = await client.get(
                    f"{url}/v1/sessions/{session_id}", headers={**headers, "X-User-Id": "bench"}
                )
                took_read = asyncio.get_running_loop().time() - started
                assert response.status_code == 200, response.text
                if i >= WARMUP:
                    chat[name].append(took_chat)
                    read[name].append(took_read)
    ms = 1000.0
    result: dict[str, Any] = {"turns": turns}
    for name in contenders:
        result[f"{name}_chat_p50_ms"] = percentile(chat[name], 50) * ms
        result[f"{name}_chat_p99_ms"] = percentile(chat[name], 99) * ms
        result[f"{name}_read_p50_ms"] = percentile(read[name], 50) * ms
        result[f"{name}_read_p99_ms"] = percentile(read[name], 99) * ms
    for name in contenders.keys() - {"off"}:
        for kind in ("chat", "read"):
            result[f"{name}_adds_{kind}_p50_ms"] = (
                result[f"{name}_{kind}_p50_ms"] - result[f"off_{kind}_p50_ms"]
            )
            result[f"{name}_{kind}_p50_ratio"] = (
                result[f"{name}_{kind}_p50_ms"] / result[f"off_{kind}_p50_ms"]
            )
    return result


def run(workdir: Path, *, turns: int = 500) -> dict[str, Any]:
    """Alternate ``turns`` chat turns and session reads between the contenders."""
    off_dir, on_dir, traced_dir = (
        workdir / "overhead-off",
        workdir / "overhead-on",
        workdir / "overhead-traced",
    )
    quiet = {"PARLEY_LOG_LEVEL": "warning"}
    with ExitStack() as stack:
        sink = stack.enter_context(_otlp_sink())
        keys = {}
        for data_dir in (on_dir, traced_dir):
            data_dir.mkdir(parents=True)
            keys[data_dir] = _create_key(data_dir)
        off = stack.enter_context(
            parley_server(off_dir, PARLEY_AUTH="off", PARLEY_METRICS_ENABLED="false", **quiet)
        )
        on = stack.enter_context(parley_server(on_dir, PARLEY_AUTH="keys", **quiet))
        traced = stack.enter_context(
            parley_server(
                traced_dir,
                PARLEY_AUTH="keys",
                OTEL_EXPORTER_OTLP_ENDPOINT=sink,
                OTEL_SERVICE_NAME="parley-bench",
                **quiet,
            )
        )
        contenders = {
            "off": (off.url, {}),
            "on": (on.url, {"Authorization": f"Bearer {keys[on_dir]}"}),
            "traced": (traced.url, {"Authorization": f"Bearer {keys[traced_dir]}"}),
        }
        return asyncio.run(_measure(contenders, turns=turns))
