"""Connection limits uvicorn does not enforce, and a problem+json answer to a request that is not HTTP.

uvicorn's HTTP protocol (httptools) arms no timer before a connection's first response, and cancels its
keep-alive timer at the first byte of the next request: a client that opens a connection and sends
nothing, half a request line or half a header, or a body shorter than its ``Content-Length``, holds the
connection — and a file descriptor — for as long as it likes. uvicorn has no header or body timeout
and no limit on the size of a request head with httptools; and a request it cannot parse gets a
plain-text ``400`` (``Content-Length: -1``, a bad chunk, garbage), not a problem.

``guarded_protocol`` returns the protocol class ``parley serve`` hands to ``uvicorn.Config(http=…)``, the
documented way to choose uvicorn's HTTP protocol. It wraps uvicorn's own ``HttpToolsProtocol``, which
still does all the HTTP work, and feeds the same bytes to a second httptools parser of its own that only
watches where each request's head and body begin and end. It uses nothing of uvicorn but that class's
constructor and the ``asyncio.Protocol`` methods — no private attribute — so an upgrade of uvicorn does
not silently disable it. What it bounds:

- **head**: from the connection's opening, or from the first byte of a later request, the request line
  and headers must be complete within ``header_timeout`` and ``max_header_bytes``;
- **body**: from the end of the head, the whole body must arrive within ``body_timeout``;
- not bounded here: the time a response takes (a ``wait`` up to ``PARLEY_MAX_WAIT``), and an idle
  connection between requests (uvicorn's keep-alive timeout, ``PARLEY_KEEP_ALIVE_SECONDS``).

A connection past a deadline is closed without an answer (a response may be on its way to an earlier,
pipelined request on it); an unparsable request or an oversize head is answered ``400`` / ``431`` as a
problem, then closed, as uvicorn itself does with its plain-text ``400``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, Literal, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from parley.api.errors import PROBLEM_JSON, problem_type

logger = logging.getLogger(__name__)

# awaiting a request's first byte · in its head · in its body · not watched (after a protocol switch) ·
# closing (past a deadline, or refused: nothing more is read)
_Phase = Literal["awaiting", "head", "body", "off", "closing"]


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may take to send a request (see the module docstring)."""

    header_timeout: float
    body_timeout: float
    max_header_bytes: int


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.Config(http=…)`` that enforces ``limits``."""

    class GuardedHttpToolsProtocol(GuardedHttpProtocol):
        pass

    GuardedHttpToolsProtocol.limits = limits
    return GuardedHttpToolsProtocol


def _problem_bytes(status: HTTPStatus, slug: str, detail: str) -> bytes:
    body = json.dumps(
        {"type": problem_type(slug), "title": status.phrase, "status": status.value, "detail": detail}
    ).encode()
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: {PROBLEM_JSON}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


_MALFORMED = _problem_bytes(HTTPStatus.BAD_REQUEST, "malformed-request", "The request is not valid HTTP/1.1.")
_HEAD_TOO_LARGE = _problem_bytes(
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
    "header-too-large",
    "The request line and headers are larger than this server accepts.",
)


class GuardedHttpProtocol(asyncio.Protocol):
    """uvicorn's ``HttpToolsProtocol``, with deadlines on each request's head and body (module docstring).

    The methods ``on_message_begin`` … ``on_message_complete`` are the watching parser's callbacks.
    """

    limits: ClassVar[ConnectionLimits]

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._inner = HttpToolsProtocol(
            config=config, server_state=server_state, app_state=app_state, _loop=_loop
        )
        self._loop = _loop or asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        # The same leniency uvicorn sets on its parser, so that both read the bytes alike.
        self._parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._phase: _Phase = "awaiting"
        self._head_bytes = 0  # bytes received since the head began, while it is incomplete
        self._head_size = 0  # the parsed head's size: request target and headers
        self._head_too_large = False
        self._url = b""

    # -- asyncio.Protocol: watch, then hand everything to uvicorn's protocol ----------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses, so no isinstance check).
        self._transport = cast("asyncio.Transport", transport)
        # A connection that never sends a byte is bounded too: its first head is due from now.
        self._arm(self.limits.header_timeout, "head")
        self._inner.connection_made(self._transport)

    def data_received(self, data: bytes) -> None:
        if self._phase == "closing":
            return
        if self._phase == "off":
            self._inner.data_received(data)
            return
        if self._phase in ("awaiting", "head"):
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # A protocol switch (WebSocket): uvicorn hands the connection over; nothing left to watch.
            self._stop_watching()
        except httptools.HttpParserError:
            if self._head_too_large:
                self._refuse_head_too_large()
            else:
                self._refuse(_MALFORMED, "a request that is not valid HTTP/1.1")
            return
        # A head still incomplete is held in memory by the parsers: bound it before it is complete.
        if self._phase == "head" and self._head_bytes > self.limits.max_header_bytes:
            self._refuse_head_too_large()
            return
        self._inner.data_received(data)

    def eof_received(self) -> None:
        self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watching()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # -- the watching parser's callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._phase = "head"
        self._url = b""
        self._head_size = 0
        if self._timer is None:  # the first request's deadline runs from the connection's opening
            self._arm(self.limits.header_timeout, "head")

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF

    def on_headers_complete(self) -> None:
        if self._head_size > self.limits.max_header_bytes:
            self._head_too_large = True
            raise ValueError("request head too large")  # stops the parser: data_received answers 431
        # uvicorn parses the URL here and answers 400 when it cannot: so do we, in our own words.
        httptools.parse_url(self._url)
        self._phase = "body"
        self._head_bytes = 0
        self._arm(self.limits.body_timeout, "body")

    def on_message_complete(self) -> None:
        self._phase = "awaiting"
        self._cancel_timer()

    # -- helpers -----------------------------------------------------------------------------------

    def _arm(self, seconds: float, what: str) -> None:
        self._cancel_timer()
        self._timer = self._loop.call_later(seconds, self._expire, what, seconds)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _stop_watching(self, phase: _Phase = "off") -> None:
        self._phase = phase
        self._cancel_timer()

    def _expire(self, what: str, seconds: float) -> None:
        self._timer = None
        logger.info(
            "closing a connection from %s: request %s not complete within %ss", self._peer(), what, seconds
        )
        self._stop_watching("closing")
        if self._transport is not None:
            self._transport.close()

    def _refuse_head_too_large(self) -> None:
        self._refuse(_HEAD_TOO_LARGE, f"a request head over {self.limits.max_header_bytes} bytes")

    def _refuse(self, response: bytes, why: str) -> None:
        logger.warning("refusing %s from %s", why, self._peer())
        self._stop_watching("closing")
        if self._transport is not None:
            self._transport.write(response)
            self._transport.close()

    def _peer(self) -> str:
        peer = self._transport.get_extra_info("peername") if self._transport is not None else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "unknown peer"
