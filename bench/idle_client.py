"""A lean HTTP/1.1 client for the thousands of requests that set up idle streams.

The bench process is the client of every stream and shares the machine's two cores with the server;
httpx spent about 3 ms of this process's CPU per request here (more than the server's 1.6-1.8 ms),
which made setting up thousands of streams slow and took CPU from the server. This client writes a
request on an asyncio stream and reads the status line and headers; it knows just enough HTTP for
Parley's answers (``Content-Length`` bodies, and event streams read until the server closes them). The
active streams, whose timing is measured, use httpx (bench/sse_reader.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


class Connection:
    """One keep-alive connection to ``url``'s host."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self._reader = reader
        self._writer = writer
        self._host = host

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def request(
        self, method: str, path: str, *, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str]]:
        """Send a request; its status and headers (names in lower case)."""
        lines = [f"{method} {path} HTTP/1.1", f"host: {self._host}", f"content-length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        found = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                found[name.strip().lower()] = value.strip()
        return int(status_line.split(" ", 2)[1]), found

    async def json(self, method: str, path: str, *, headers: dict[str, str], payload: Any) -> tuple[int, Any]:
        """A JSON request and its JSON answer (``Content-Length``-framed, as Parley's are)."""
        body = json.dumps(payload).encode()
        status, found = await self.request(
            method, path, headers={"content-type": "application/json", **headers}, body=body
        )
        answer = await self._reader.readexactly(int(found.get("content-length", "0")))
        return status, json.loads(answer) if answer else None

    async def read_until_closed(self) -> bytes:
        """What the server sends from now until it closes the connection, except heartbeat comments
        (an event stream that only waits sends nothing else)."""
        received = b""
        while chunk := await self._reader.read(65536):
            if b"data:" in chunk or b"event:" in chunk:
                received += chunk
        return received

    def close(self) -> None:
        self._writer.close()
