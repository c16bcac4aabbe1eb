"""Reading a JSON request body: one answer, ``400 /problems/malformed-json``, for anything that is not JSON.

FastAPI answers a body it cannot parse in two ways — ``422 json_invalid`` for a syntax error, a bare
``400`` for a body that is not UTF-8, too deeply nested or holds a 5,000-digit number — and takes
``NaN``/``Infinity``, UTF-16 and UTF-32, which are not JSON (RFC 8259 §8.1: JSON on a network is UTF-8).
Routes that read a body use ``JsonRoute``: it parses the body strictly before FastAPI does, so every
malformed body becomes ``MalformedJson``; FastAPI then reads the parsed value from the request.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from parley.api.errors import MalformedJson


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters ignored."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class _NotRepresentable(ValueError):
    """A token the JSON grammar allows that has no faithful Python value, or one it does not allow."""


def _refuse_constant(name: str) -> Any:
    raise _NotRepresentable(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 24 else f"{text[:20]}..."
        raise _NotRepresentable(f"the number {shown} is out of range")
    return value


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body``; ``MalformedJson`` saying why when it has none."""
    if not body:
        raise MalformedJson("The body is empty; send a JSON object.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"The body is not UTF-8 (byte {exc.start}).") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise MalformedJson(
            f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except _NotRepresentable as exc:
        raise MalformedJson(f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise MalformedJson("The body is nested too deeply to read.") from None
    except ValueError:
        # int() refuses a number of more than sys.get_int_max_str_digits() digits (4,300).
        raise MalformedJson("The body holds a number too long to read.") from None


class _JsonRequest(Request):
    """A request whose ``json()`` is ``parse_json``'s, read once."""

    _parsed: Any

    async def json(self) -> Any:
        if not hasattr(self, "_parsed"):
            self._parsed = parse_json(await self.body())
        return self._parsed


class JsonRoute(APIRoute):
    """A route whose JSON body is parsed by ``parse_json`` before FastAPI sees it.

    Parsing happens here, outside FastAPI's request handler, because that handler turns any error of
    ``Request.json()`` other than a ``json.JSONDecodeError`` into its own generic ``400``.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        reads_body = self.body_field is not None

        async def handler(request: Request) -> Response:
            request = _JsonRequest(request.scope, request.receive)
            # A body not declared as JSON is left to the route's JsonBody dependency (415).
            if reads_body and is_json_media_type(request.headers.get("content-type", "")):
                try:
                    await request.json()
                except ClientDisconnect:
                    # The client is gone (or the server's body timeout closed it): nobody hears the answer.
                    return Response(status_code=400)
            return await handle(request)

        return handler
