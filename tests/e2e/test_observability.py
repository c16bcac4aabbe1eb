"""Operations against real processes: JSON log lines carrying the request and turn ids (and no message
text or key), spans received by an OTLP/HTTP endpoint on loopback, a worker's metrics on its own port."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from tests.backends import Backend
from tests.e2e.server import ServerProcess, free_port, worker_process
from tests.waiting import wait_until


def _json_lines(log: str) -> list[dict[str, Any]]:
    lines = [line for line in log.splitlines() if line.strip()]
    # Every line is one JSON object (a traceback included: it is a field, not lines of its own).
    return [json.loads(line) for line in lines]


def test_logs_are_json_lines_with_the_request_and_turn_ids_and_no_content(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env={"PARLEY_LOG_FORMAT": "json"}).start()
    secret_text = "my-private-words-91f3"
    token = "sk-test-bearer-6b1d2c"
    try:
        with server.client() as client:
            response = client.post(
                "/v1/chat",
                json={"user_id": "alice", "message": f"[[fail]] {secret_text}", "wait": 30},
                headers={"X-Request-Id": "req-e2e-0001", "Authorization": f"Bearer {token}"},
            )
            assert response.headers["X-Request-Id"] == "req-e2e-0001"
            body = response.json()
            assert body["status"] == "failed"
            fresh = client.get("/healthz", headers={"X-Request-Id": "no spaces allowed"})
            assert fresh.headers["X-Request-Id"] != "no spaces allowed"
            assert len(fresh.headers["X-Request-Id"]) == 32
        wait_until(lambda: "turn attempt 1" in server.log(), what="the failed turn's log line")
    finally:
        assert server.stop(), server.log()
    log = server.log()
    entries = _json_lines(log)
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    access = [e for e in entries if e["logger"] == "uvicorn.access" and "/v1/chat" in e["message"]]
    assert [e["request_id"] for e in access] == ["req-e2e-0001"]
    [turn] = [e for e in entries if e["message"].startswith("turn attempt 1")]
    assert turn["level"] == "warning"
    assert turn["session_id"] == body["session_id"]
    assert turn["message_id"] == body["message_id"]
    assert "request_id" not in turn  # the turn runs in a task of its own, not the request's
    assert "ScriptedModelError" in turn["exception"]
    assert secret_text not in log
    assert token not in log


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[bytes]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append(self.rfile.read(length) if self.path == "/v1/traces" else b"")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A minimal OTLP/HTTP traces endpoint on a loopback port: it keeps each request's body."""
    received: list[bytes] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def _span_names(bodies: list[bytes]) -> set[str]:
    names: set[str] = set()
    for body in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                names.update(span.name for span in scope.spans)
    return names


def test_spans_reach_an_otlp_endpoint(tmp_path: Path, otlp_receiver: tuple[str, list[bytes]]) -> None:
    endpoint, received = otlp_receiver
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    try:
        with server.client() as client:
            body = client.post("/v1/chat", json={"user_id": "alice", "message": "hello", "wait": 30}).json()
            assert body["status"] == "completed"
        wanted = {"POST /v1/chat", "turn", "node agent"}
        wait_until(lambda: wanted <= _span_names(received), timeout=20, what=f"spans {wanted}")
    finally:
        assert server.stop(), server.log()


@pytest.mark.queue_only
def test_a_worker_serves_its_metrics_on_its_bind_address(backend: Backend, make_settings: Any) -> None:
    # ``make_settings`` (unused) is what marks a test as one that runs turns, whose queue variant is kept;
    # the processes are started here, not by ``start_server``: only the worker binds the metrics port.
    port = free_port()
    worker = worker_process(
        backend.data_dir, env={**backend.env(), "PARLEY_METRICS_ADDRESS": f"127.0.0.1:{port}"}
    ).start()
    server = ServerProcess(backend.data_dir, env=backend.env())
    try:
        server.start()
        with server.client() as client:
            body = client.post("/v1/chat", json={"user_id": "alice", "message": "hello", "wait": 30}).json()
            assert body["status"] == "completed"

        def completed_turns() -> float:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "parley_turns_total" and sample.labels == {"outcome": "completed"}:
                        return sample.value
            return 0.0

        wait_until(lambda: completed_turns() == 1, what="the worker's completed-turn counter")
        # The API instance ran no turn: its own /metrics says so.
        with server.client() as client:
            api = client.get("/metrics").text
        assert 'parley_turns_total{outcome="completed"}' not in api
    finally:
        server.kill()
        assert worker.stop(), worker.log()
