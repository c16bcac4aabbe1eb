"""The OpenAPI document, made to describe the API that runs.

FastAPI's document declares every error as ``application/json`` with its own validation shape and
knows nothing of what middleware, the JSON route class or settings add. This module rewrites it once
per app: every error response is ``application/problem+json`` with the ``Problem`` schema; the problems
every operation of a kind can answer are declared on all of them; and the limits the server enforces
from settings are in the request schemas, so a client (or Schemathesis) reads the same rules the server
applies.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from parley.settings import Settings

METRICS_PATH = "/metrics"
PROBLEM_REF = "#/components/schemas/Problem"
_PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}}
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

# What answers these, and so which operations get them:
_MALFORMED_JSON = "The body is not JSON: empty, not UTF-8, a syntax error, or past the parser's limits."
_TOO_LARGE = "The body is over PARLEY_MAX_BODY_BYTES (middleware.BodySizeLimit: every POST)."
_NOT_JSON = "The body is not sent as application/json."
_INVALID = "A parameter or field is invalid; `errors` names it."
_OPERATOR_DISABLED = "X-Role: operator while the operator role is disabled."
_TOO_MANY = (
    "Past PARLEY_RATE_LIMIT (Retry-After says when to try again); for a chat message, also a session "
    "holding PARLEY_MAX_QUEUED_PER_SESSION unfinished messages."
)
_UNAVAILABLE = "Storage is unavailable, or the service is starting or stopping; retry later."
_UNAUTHORIZED = "No API key, or not a valid, unrevoked one (PARLEY_AUTH=keys); see WWW-Authenticate."
_ROLE_FORBIDDEN = "The key's role may not do this, or a user key names another user (PARLEY_AUTH=keys)."
BEARER = "bearer"
_BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key made by `parley keys create` (PARLEY_AUTH=keys): parley_<id>_<secret>.",
}
_USER_ID_HEADER = "X-User-Id"
_BODIES_WITH_USER = ("ChatRequest", "ResumeRequest", "RewindRequest")


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Make ``app.openapi()`` return the rewritten document (built once, on first use)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            _declare_problems(document, keys=settings.auth == "keys")
            _declare_limits(document, settings)
            _declare_auth(document, keys=settings.auth == "keys")
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _needs_key(path: str) -> bool:
    """Whether an operation takes the bearer key when keys are on: the API, and the metrics (an admin's)."""
    return path.startswith("/v1/") or path == METRICS_PATH


def _cross_cutting(path: str, method: str, operation: dict[str, Any], *, keys: bool) -> dict[str, str]:
    """Problems an operation can answer because of what it is, not what its route declares."""
    found: dict[str, str] = {}
    if keys and _needs_key(path):
        found |= {"401": _UNAUTHORIZED, "403": _ROLE_FORBIDDEN}
    if "requestBody" in operation:
        found |= {"400": _MALFORMED_JSON, "415": _NOT_JSON, "422": _INVALID}
    if method == "post":
        found["413"] = _TOO_LARGE
    if operation.get("parameters"):
        found["422"] = _INVALID
    if any(p.get("in") == "header" and p.get("name") == "X-Role" for p in operation.get("parameters", ())):
        found["403"] = _OPERATOR_DISABLED
    if path.startswith("/v1/"):
        found["429"] = _TOO_MANY
        found["503"] = _UNAVAILABLE
    return found


def _declare_problems(document: dict[str, Any], *, keys: bool) -> None:
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status, description in _cross_cutting(path, method, operation, keys=keys).items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = copy.deepcopy(_PROBLEM_CONTENT)
            operation["responses"] = dict(sorted(responses.items()))
            for parameter in operation.get("parameters", ()):
                parameter["schema"] = _absent_not_null(parameter["schema"])
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    # FastAPI's validation-error shape: never sent (api/errors.py answers every 422 with a Problem).
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)


def _absent_not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter's schema without FastAPI's ``null`` alternative (from ``str | None``).

    A header or query parameter is absent or a string: ``null`` cannot be sent, and a client that writes
    ``X-Role: null`` sends the string "null", which the server rightly refuses.
    """
    branches = schema.get("anyOf")
    if not branches:
        return schema
    kept = [branch for branch in branches if branch != {"type": "null"}]
    if len(kept) != 1:
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**kept[0], **rest}


def _declare_limits(document: dict[str, Any], settings: Settings) -> None:
    """Limits that come from settings, checked in the routers (chat.resolve_wait, the message length)."""
    schemas = document["components"]["schemas"]
    for name in ("ChatRequest", "ResumeRequest", "RewindRequest"):
        wait = schemas[name]["properties"]["wait"]
        for branch in wait.get("anyOf", [wait]):
            if branch.get("type") == "number":
                branch["maximum"] = settings.max_wait
    schemas["ChatRequest"]["properties"]["message"]["maxLength"] = settings.max_message_chars
    _declare_graphs(document, [name for name, _ in settings.graph_references()])
    if not settings.webhook_allowed_hosts:
        # Webhooks are off: a callback_url is refused (422, "webhooks are off"), so the document offers
        # none. With them on, which hosts pass is the allow-list's, which no schema can say.
        for name in ("ChatRequest", "ResumeRequest"):
            schemas[name]["properties"].pop("callback_url", None)


def _declare_graphs(document: dict[str, Any], names: list[str]) -> None:
    """A ``graph`` is one of the graphs this service hosts (``PARLEY_GRAPHS``): the document lists them,
    as the routers check them (another name is 422)."""
    chat = document["components"]["schemas"]["ChatRequest"]["properties"]["graph"]
    for branch in chat.get("anyOf", [chat]):
        if branch.get("type") == "string":
            branch.pop("pattern", None)
            branch["enum"] = names
    for parameter in document["paths"]["/v1/interrupts"]["get"].get("parameters", []):
        if parameter["name"] == "graph":
            parameter["schema"] = {**parameter["schema"], "enum": names}
            parameter["schema"].pop("pattern", None)


def _declare_auth(document: dict[str, Any], *, keys: bool) -> None:
    """Who must name the user, and how to authenticate, as the settings make it.

    The request models leave ``user_id`` (and the routes ``X-User-Id``) optional, because a user key
    needs neither; with auth off every caller must send them, and the document says so, as it did
    before keys. With keys every ``/v1`` operation takes the bearer scheme.
    """
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS or not _needs_key(path):
                continue
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") == "header" and parameter.get("name") == _USER_ID_HEADER:
                    parameter["required"] = not keys
            if keys:
                operation["security"] = [{BEARER: []}]
    schemas = document["components"]["schemas"]
    for name in _BODIES_WITH_USER:
        schema = schemas[name]
        schema["properties"]["user_id"] = _absent_not_null(schema["properties"]["user_id"])
        schema["properties"]["user_id"].pop("default", None)
        if not keys:
            schema["required"] = ["user_id", *schema.get("required", [])]
    if keys:
        document["components"].setdefault("securitySchemes", {})[BEARER] = _BEARER_SCHEME
