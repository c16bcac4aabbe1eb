"""Connection limits over raw sockets to a real ``parley serve``: partial requests are closed within the
configured timeouts, oversize heads and requests that are not HTTP get a problem, the server stays up.

Every wait here is a socket read with a deadline: the test is told the moment the server closes.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import ServerProcess

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_HEADER_BYTES = 4096
MARGIN = 3.0  # how late after its deadline a close may come on a busy two-core machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("limits") / "data"
    process = ServerProcess(
        data,
        env={
            "PARLEY_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "PARLEY_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "PARLEY_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
            # Far longer than the timeouts under test, so that uvicorn's own idle timer closes nothing here.
            "PARLEY_KEEP_ALIVE_SECONDS": "120",
        },
    )
    process.start()
    yield process
    process.kill()


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def _read_until_closed(sock: socket.socket, *, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it did (``time.monotonic()``);
    fails if it is still open ``within`` seconds from now."""
    deadline = time.monotonic() + within
    received = b""
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the connection was still open after {within}s (got {received!r})"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue  # the assertion above reports it
        except ConnectionResetError:
            return received, time.monotonic()
        if not chunk:
            return received, time.monotonic()
        received += chunk


def _read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length body, the connection left open."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _problem(response: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/problem+json" in head.lower(), head
    problem: dict[str, object] = json.loads(body)
    assert problem["status"] == status
    return status, problem


def _server_answers(server: ServerProcess) -> None:
    assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200


def test_many_connections_holding_half_a_header_are_closed_in_time(server: ServerProcess) -> None:
    opened = time.monotonic()
    sockets = [_connect(server) for _ in range(50)]
    for sock in sockets:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: one byte at a ti")
    _server_answers(server)  # the held connections do not stop others being served
    for sock in sockets:
        received, closed = _read_until_closed(sock, within=HEADER_TIMEOUT + MARGIN)
        assert received == b""  # closed without an answer: nothing was asked yet
        assert closed - opened >= HEADER_TIMEOUT * 0.9  # by the deadline, not at once
        sock.close()
    _server_answers(server)


def test_a_connection_that_sends_nothing_is_closed_in_time(server: ServerProcess) -> None:
    opened = time.monotonic()
    with _connect(server) as sock:
        received, closed = _read_until_closed(sock, within=HEADER_TIMEOUT + MARGIN)
    assert received == b""
    assert closed - opened >= HEADER_TIMEOUT * 0.9


def test_half_a_second_request_on_a_kept_alive_connection_is_closed_in_time(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        begun = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        received, closed = _read_until_closed(sock, within=HEADER_TIMEOUT + MARGIN)
    assert received == b""
    assert closed - begun >= HEADER_TIMEOUT * 0.9


def test_a_body_shorter_than_its_length_is_closed_in_time(server: ServerProcess) -> None:
    with _connect(server) as sock:
        begun = time.monotonic()
        sock.sendall(
            b"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"user_id": "alice"'
        )
        received, closed = _read_until_closed(sock, within=BODY_TIMEOUT + MARGIN)
    assert received == b""
    assert closed - begun >= BODY_TIMEOUT * 0.9
    _server_answers(server)
    assert "Traceback" not in server.log()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET http://[::1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ],
    ids=["negative-length", "two-lengths", "bad-chunk", "bad-header", "not-http", "bad-url"],
)
def test_a_request_that_is_not_http_gets_a_problem_and_a_close(
    server: ServerProcess, request_bytes: bytes
) -> None:
    with _connect(server) as sock:
        sock.sendall(request_bytes)
        received, _ = _read_until_closed(sock, within=MARGIN)
    status, problem = _problem(received)
    assert status == 400
    assert problem["type"] == "/problems/malformed-request"
    _server_answers(server)


def test_an_oversize_head_gets_431_whether_complete_or_not(server: ServerProcess) -> None:
    for tail in (b"\r\n\r\n", b""):
        with _connect(server) as sock:
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + tail
            )
            received, _ = _read_until_closed(sock, within=MARGIN)
        status, problem = _problem(received)
        assert status == 431
        assert problem["type"] == "/problems/header-too-large"
    with _connect(server) as sock:  # a head under the limit is served
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200")


def test_a_reply_slower_than_the_timeouts_is_not_cut(server: ServerProcess) -> None:
    body = json.dumps({"user_id": "alice", "message": "[[sleep:2.5]] slow", "wait": 10}).encode()
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        response = _read_response(sock)
    assert response.startswith(b"HTTP/1.1 200"), response
    assert json.loads(response.partition(b"\r\n\r\n")[2])["reply"] == "Echo: slow"


def test_connections_past_the_limit_get_503(tmp_path: Path) -> None:
    limited = ServerProcess(tmp_path / "data", env={"PARLEY_MAX_CONNECTIONS": "4"}).start()
    try:
        idle = [_connect(limited) for _ in range(3)]
        with _connect(limited) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert _read_response(sock).startswith(b"HTTP/1.1 503")
        for sock in idle:
            sock.close()
    finally:
        limited.kill()
