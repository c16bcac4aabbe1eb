"""A real webhook receiver for tests: an HTTP server on a loopback port, in a thread of the test process,
that verifies every request's signature with the ``standardwebhooks`` package (the spec's reference
implementation, not Parley's code) and answers what the test scripts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 random bytes, base64: for tests only
OLD_SECRET = "whsec_dGhlIG9sZCBzZWNyZXQgb2YgdGhlIHRlc3Rz"


@dataclass
class Received:
    """One request as it arrived."""

    webhook_id: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    error: str | None
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """The server's state: what arrived, and the statuses to answer with, in order (then ``default``)."""

    port: int
    secret: str = SECRET
    statuses: list[int] = field(default_factory=list)
    default: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None
    """While set to an unset event, each request is recorded and then held, unanswered, until it is set."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/parley"

    def record(self, headers: dict[str, str], body: bytes) -> int:
        verified, error = True, None
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            verified, error = False, str(exc)
        with self._lock:
            self.received.append(
                Received(headers.get("webhook-id", ""), headers, body, verified, error, time.time())
            )
            return self.statuses.pop(0) if self.statuses else self.default

    def of(self, webhook_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.webhook_id == webhook_id]

    def count(self) -> int:
        with self._lock:
            return len(self.received)


@contextmanager
def running_receiver(port: int = 0, **options: Any) -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 (``port`` 0: any free one) until the block ends."""
    state: Receiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert state is not None
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            status = state.record({k.lower(): v for k, v in self.headers.items()}, body)
            if state.hold is not None:
                state.hold.wait(60)
            self.send_response(status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            body = b"" if status in (204, 304) else b"ok"  # a 204 has no body, by HTTP's rules
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    state = Receiver(port=server.server_address[1], **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
