"""``RequestContext``: the outermost ASGI middleware — each request's id, its metrics and its span.

Pure ASGI, not ``BaseHTTPMiddleware`` (which breaks streamed responses): it wraps ``send`` to echo the
request id and to learn the status, and it finds the route template in the scope once routing has run
(``scope["route"]``), so labels and span names are templates (``/v1/messages/{message_id}``), never raw
paths.

``X-Request-Id`` is taken as it comes when it is a short token of safe characters (a proxy's or a
client's id, to correlate with theirs); anything else is replaced by a fresh id, so that a log line never
carries what a caller chose to inject. It is always echoed on the response.
"""

from __future__ import annotations

import re
import time
import uuid

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.observability import logs
from parley.observability.metrics import UNMATCHED_ROUTE, Metrics
from parley.observability.tracing import Tracing

REQUEST_ID_HEADER = "X-Request-Id"
_HEADER = REQUEST_ID_HEADER.lower().encode()
_ACCEPTED_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,64}")
_PROPAGATOR = TraceContextTextMapPropagator()


def request_id_of(value: bytes | None) -> str:
    """The caller's id if it is safe to log and echo, else a fresh one."""
    if value is not None and _ACCEPTED_ID.fullmatch(value):
        return value.decode()
    return uuid.uuid4().hex


def route_of(scope: Scope) -> str:
    """The template of the route that handled the request (bounded label values)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class RequestContext:
    """See the module docstring. ``metrics`` and ``tracing`` are read from the app's services once the
    lifespan built them (``app.state.services``); before that, requests only get their id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        request_id = request_id_of(next((value for name, value in headers if name == _HEADER), None))
        services = getattr(scope["app"].state, "services", None) if "app" in scope else None
        metrics: Metrics | None = getattr(services, "metrics", None)
        tracing: Tracing | None = getattr(services, "tracing", None)
        status = 500
        echoed = (_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), echoed]
            await send(message)

        log_token = logs.request_id.set(request_id)
        span = None
        otel_token = None
        if tracing is not None and tracing.enabled:
            carrier = {key.decode("latin-1"): value.decode("latin-1") for key, value in headers}
            span = tracing.tracer.start_span(
                scope["method"],
                context=_PROPAGATOR.extract(carrier),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": scope["method"], "parley.request_id": request_id},
            )
            otel_token = otel_context.attach(trace.set_span_in_context(span))
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = route_of(scope)
            if metrics is not None:
                metrics.request_done(
                    method=scope["method"], route=route, status=status, seconds=time.perf_counter() - started
                )
            if span is not None:
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                span.end()
            if otel_token is not None:
                otel_context.detach(otel_token)
            logs.request_id.reset(log_token)
