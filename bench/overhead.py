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

from bench.common import REPO, measure_alternating, parley_server


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
        return asyncio.run(measure_alternating(contenders, turns=turns, baseline="off"))
