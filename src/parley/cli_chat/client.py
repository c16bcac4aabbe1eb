"""Parley's HTTP API as the terminal chat uses it: JSON reads, problem+json errors, and a message's event
stream that survives a dropped connection.

A stream that ends without its ``done`` event was cut (the server always ends with ``done``): the
client reopens ``GET /v1/messages/{id}/events`` with ``Last-Event-ID`` set to the last id it received,
so the server sends exactly what was missed, and keeps trying while the service restarts, for
``reconnect_seconds`` after the last event it got.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from typing import Any, cast
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from parley.cli_chat.events import TurnEvent

EVENT_STREAM = "text/event-stream"
_POST_TRIES = 3
"""Sends of a POST whose connection broke after the request may have left (the same Idempotency-Key each
time, so the server stores it once)."""


class ChatError(Exception):
    """Something the chat tells its user in one line (never with a traceback)."""


class ApiError(ChatError):
    """The service refused a request: its problem+json, or whatever else came with the error status."""

    def __init__(self, status: int, detail: str, *, problem_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problem_type = problem_type

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Read an error response (already read): the problem's ``detail`` and the fields at fault."""
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # Not a problem: uvicorn's plain-text 503 past the connection limit, or a proxy's page.
            text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
            return cls(response.status_code, text or f"HTTP {response.status_code} {response.reason_phrase}")
        detail = str(body.get("detail") or body.get("title") or f"HTTP {response.status_code}")
        # A 422 names the field at fault; say which when the detail does not already.
        fields = [
            str(error["field"])
            for error in body.get("errors") or []
            if isinstance(error, dict) and error.get("field")
        ]
        if fields and not any(name in detail for name in fields):
            detail = f"{', '.join(fields)}: {detail}"
        problem_type = body.get("type")
        return cls(response.status_code, detail, problem_type=str(problem_type) if problem_type else None)


class Unreachable(ChatError):
    """The service could not be reached, or stopped answering."""


class ParleyClient:
    """One user's view of one Parley service."""

    def __init__(
        self,
        *,
        base_url: str,
        user_id: str,
        api_key: str | None = None,
        reconnect_seconds: float = 30.0,
        read_timeout: float = 60.0,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        """``user_id`` "" (with an ``api_key``): name no user, and act as the one a user key is bound to."""
        self.base_url = base_url.rstrip("/")
        self.user_id = user_id
        self.reconnect_seconds = reconnect_seconds
        self.on_reconnect = on_reconnect
        # A stream's read timeout outlasts the server's heartbeat (15 s by default) several times over: a
        # silent stream is a dead connection, and the reconnection takes over.
        self._stream_timeout = httpx.Timeout(10.0, read=read_timeout)
        headers = {"Accept": "application/json"}
        if user_id:
            headers["X-User-Id"] = user_id
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(10.0, read=30.0),
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    # -- reads ----------------------------------------------------------------------------------

    def session(self, session_id: str) -> dict[str, Any]:
        """``GET /v1/sessions/{id}``."""
        return self._get_json(f"/v1/sessions/{quote(session_id, safe='')}")

    def _get_json(self, path: str) -> dict[str, Any]:
        try:
            response = self._http.get(path)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.is_error:
            raise ApiError.from_response(response)
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ChatError(
                f"{self.base_url}{path} did not answer with a JSON object: is it a Parley service?"
            )
        return body

    # -- turns ----------------------------------------------------------------------------------

    def chat(self, *, message: str, session_id: str | None, graph: str | None = None) -> TurnStream:
        """``POST /v1/chat`` for the event stream of the new message (a new session when None, with
        ``graph`` when given)."""
        body: dict[str, Any] = {**self._named(), "message": message}
        if session_id is not None:
            body["session_id"] = session_id
        if graph is not None:
            body["graph"] = graph
        return self._post_turn("/v1/chat", body)

    def resume(self, *, session_id: str, interrupt_id: str, value: Any) -> TurnStream:
        """``POST /v1/sessions/{id}/resume``: answer a pending interrupt; stream the turn it starts."""
        body = {**self._named(), "interrupt_id": interrupt_id, "value": value}
        return self._post_turn(f"/v1/sessions/{quote(session_id, safe='')}/resume", body)

    def _named(self) -> dict[str, str]:
        return {"user_id": self.user_id} if self.user_id else {}

    def follow(self, message_id: str) -> TurnStream:
        """The events of a message already sent (by this client earlier, or by an operator's resume)."""
        return TurnStream(self, message_id=message_id, session_id=None, response=None)

    def _post_turn(self, path: str, body: dict[str, Any]) -> TurnStream:
        key = uuid.uuid4().hex
        for attempt in range(1, _POST_TRIES + 1):
            try:
                response = self._open("POST", path, json=body, headers={"Idempotency-Key": key})
            except httpx.ConnectError as exc:
                # Nothing was sent: say so now rather than wait for a service that is not there.
                raise self._unreachable(exc) from exc
            except httpx.TransportError as exc:
                if attempt == _POST_TRIES:
                    raise self._unreachable(exc) from exc
                continue
            message_id = response.headers.get("X-Message-Id") or _last_segment(
                response.headers.get("Location")
            )
            if not message_id:
                response.close()
                raise ChatError("the service's event stream did not say which message it is")
            return TurnStream(
                self,
                message_id=message_id,
                session_id=response.headers.get("X-Session-Id"),
                response=response,
            )
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def open_events(self, message_id: str, *, after: int | None) -> httpx.Response:
        """``GET /v1/messages/{id}/events``, from the start or after event ``after``."""
        headers = {} if after is None else {"Last-Event-ID": str(after)}
        return self._open("GET", f"/v1/messages/{quote(message_id, safe='')}/events", headers=headers)

    def _open(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """Send a request for an event stream; an error status raises ``ApiError``."""
        request = self._http.build_request(
            method,
            path,
            json=json,
            headers={"Accept": EVENT_STREAM, **(headers or {})},
            timeout=self._stream_timeout,
        )
        response = self._http.send(request, stream=True)
        if response.is_error or not response.headers.get("content-type", "").startswith(EVENT_STREAM):
            try:
                response.read()
            finally:
                response.close()
            if response.is_error:
                raise ApiError.from_response(response)
            raise ChatError(
                f"{self.base_url} answered {response.headers.get('content-type', 'no content type')}, "
                "not an event stream: is it a Parley service that streams replies?"
            )
        return response

    def _unreachable(self, exc: httpx.TransportError) -> Unreachable:
        reason = str(exc) or type(exc).__name__
        return Unreachable(f"cannot reach {self.base_url}: {reason}")


def _last_segment(location: str | None) -> str | None:
    return location.rstrip("/").rsplit("/", 1)[-1] if location else None


class TurnStream:
    """The events of one message, in order, each once, to its ``done`` — across dropped connections."""

    def __init__(
        self,
        client: ParleyClient,
        *,
        message_id: str,
        session_id: str | None,
        response: httpx.Response | None,
    ) -> None:
        self.message_id = message_id
        self.session_id = session_id
        self.last_event_id: int | None = None
        self._client = client
        self._response = response

    def close(self) -> None:
        """Stop reading (the turn goes on at the server)."""
        if self._response is not None:
            self._response.close()
            self._response = None

    def __iter__(self) -> Iterator[TurnEvent]:
        quiet_since: float | None = None
        while True:
            if self._response is None:
                if quiet_since is None:
                    quiet_since = time.monotonic()
                self._response = self._reopen(deadline=quiet_since + self._client.reconnect_seconds)
            # Closed explicitly rather than when freed: an exception inside a freed generator is
            # printed and dropped, a Ctrl-C among them (ctrl_c.py).
            events = cast("Generator[ServerSentEvent, None, None]", EventSource(self._response).iter_sse())
            try:
                for sse in events:
                    if sse.event == "message" and not sse.data:
                        # httpx-sse reports the blank line after a heartbeat comment as an empty event
                        # once an id has been seen; the SSE specification dispatches nothing there.
                        continue
                    event = TurnEvent.of(sse)
                    quiet_since = None
                    if event.id is not None:
                        self.last_event_id = event.id
                    yield event
                    if event.kind == "done":
                        return
            except (httpx.TransportError, SSEError):
                pass  # cut mid-stream: reopened below, after the last event received
            finally:
                with contextlib.suppress(httpx.TransportError, SSEError):
                    events.close()
                self.close()
            if quiet_since is None:
                quiet_since = time.monotonic()
            if self._client.on_reconnect is not None:
                self._client.on_reconnect()

    def _reopen(self, *, deadline: float) -> httpx.Response:
        delay = 0.1
        while True:
            try:
                return self._client.open_events(self.message_id, after=self.last_event_id)
            except httpx.TransportError as exc:
                failure: Exception = exc
            except ApiError as exc:
                if exc.status < 500:
                    raise  # the message is gone, or never was this user's: no retry changes that
                failure = exc  # the service is starting, stopping or without its database
            if time.monotonic() + delay > deadline:
                raise Unreachable(
                    f"lost the stream of message {self.message_id} and could not reconnect to "
                    f"{self._client.base_url} within {self._client.reconnect_seconds:g} s ({failure})"
                ) from failure
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
