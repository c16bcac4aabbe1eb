"""The one place where errors become HTTP responses: RFC 9457 problem+json, never a stack trace."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from parley.core.errors import InvalidInput, ParleyError, Unauthorized

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
AUTH_REALM = "parley"


class UnsupportedMediaType(ParleyError):
    """The request body is not JSON."""

    status = 415
    title = "Unsupported Media Type"
    type_slug = "unsupported-media-type"


class PayloadTooLarge(ParleyError):
    """The request body is over ``PARLEY_MAX_BODY_BYTES``."""

    status = 413
    title = "Content Too Large"
    type_slug = "payload-too-large"


class MalformedJson(ParleyError):
    """The request body is not JSON this API can read: not UTF-8, not JSON, or past what the parser takes
    (nesting, a number's size). Well-formed JSON that fails validation is ``422`` instead."""

    status = 400
    title = "Bad Request"
    type_slug = "malformed-json"


def problem_type(slug: str) -> str:
    """The ``type`` URI of a problem; documented in docs/api.md."""
    return f"/problems/{slug}"


def problem_response(
    *,
    status: int,
    title: str,
    slug: str,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    extensions: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {"type": problem_type(slug), "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    if extensions:
        body.update({k: v for k, v in extensions.items() if k not in body})
    return JSONResponse(jsonable_encoder(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        # The raw input is left out: it may be large, or hold what the caller should not see echoed.
        errors.append({"loc": loc, "field": _field(loc), "msg": error.get("msg"), "type": error.get("type")})
    return errors


async def _on_parley_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ParleyError)
    errors = None
    if isinstance(exc, InvalidInput):
        errors = [{"loc": exc.loc, "field": _field(exc.loc), "msg": exc.detail, "type": "value_error"}]
    if exc.status >= 500:
        logger.warning("%s: %s", type(exc).__name__, exc.detail)
    headers = exc.headers()
    if isinstance(exc, Unauthorized):
        # RFC 9110: a 401 says how to authenticate; RFC 6750's error says the token sent was refused.
        error = "" if exc.token_error is None else f', error="{exc.token_error}"'
        headers["WWW-Authenticate"] = f'Bearer realm="{AUTH_REALM}"{error}'
    return problem_response(
        status=exc.status,
        title=exc.title,
        slug=exc.type_slug,
        detail=exc.detail,
        errors=errors,
        extensions=exc.extensions,
        headers=headers or None,
    )


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    first = errors[0] if errors else None
    detail = f"{first['field']}: {first['msg']}" if first else "The request is not valid."
    return problem_response(
        status=422, title="Unprocessable Content", slug="validation", detail=detail, errors=errors
    )


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _allowed_methods(request: Request) -> str | None:
    """Every method the OpenAPI document gives the request's path, or None for a path it leaves out.

    Starlette's own ``Allow`` names only the first route whose path matched: ``Allow: GET`` on
    ``/v1/sessions/{id}``, whose ``DELETE`` is another route. The document is where every route of a path
    comes together (and what clients read), so ``Allow`` says what it says.
    """
    paths: dict[str, dict[str, Any]] = request.app.openapi().get("paths", {})
    for template, item in paths.items():
        pattern, _, _ = compile_path(template)
        if pattern.match(request.scope["path"]):
            return ", ".join(sorted(method.upper() for method in item if method in _HTTP_METHODS))
    return None


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405 and (allowed := _allowed_methods(request)) is not None:
        headers["Allow"] = allowed
    return problem_response(
        status=exc.status_code,
        title=phrase,
        slug=phrase.lower().replace(" ", "-"),
        detail=detail,
        headers=headers or None,
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        status=500,
        title="Internal Server Error",
        slug="internal",
        detail="An unexpected error occurred; it has been logged.",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to problem+json."""
    app.add_exception_handler(ParleyError, _on_parley_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
