"""The OpenAPI document says how to authenticate, as the settings make it: with keys, the bearer scheme on
every /v1 operation and its 401 and 403; with auth off, the user id required as before keys."""

from __future__ import annotations

from typing import Any

from parley.api.app import create_app
from parley.settings import Settings

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _document(auth: str) -> dict[str, Any]:
    schema: dict[str, Any] = create_app(Settings(model="scripted", auth=auth)).openapi()
    return schema


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]


def _user_header(op: dict[str, Any]) -> dict[str, Any] | None:
    return next(
        (p for p in op.get("parameters", []) if p["in"] == "header" and p["name"] == "X-User-Id"), None
    )


def test_with_keys_every_v1_operation_takes_a_bearer_key_and_declares_401_and_403() -> None:
    document = _document("keys")
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, method, op in _operations(document):
        if path.startswith("/v1/") or path == "/metrics":  # the metrics are an admin key's
            assert op["security"] == [{"bearer": []}], (path, method)
            assert op["responses"]["401"]["content"] == PROBLEM, (path, method)
            assert op["responses"]["403"]["content"] == PROBLEM, (path, method)
            header = _user_header(op)
            assert header is None or header["required"] is False, (path, method)
        else:
            assert "security" not in op, path
            assert "401" not in op["responses"], path
    for name in ("ChatRequest", "ResumeRequest", "RewindRequest"):
        schema = document["components"]["schemas"][name]
        assert "user_id" not in schema.get("required", []), name
        assert schema["properties"]["user_id"]["type"] == "string", name


def test_with_auth_off_the_user_is_required_and_no_scheme_is_declared() -> None:
    document = _document("off")
    assert "securitySchemes" not in document["components"]
    headers = [_user_header(op) for path, _, op in _operations(document) if path.startswith("/v1/")]
    assert [h["required"] for h in headers if h is not None] == [True] * len([h for h in headers if h])
    assert len([h for h in headers if h]) >= 10
    for name in ("ChatRequest", "ResumeRequest", "RewindRequest"):
        schema = document["components"]["schemas"][name]
        assert "user_id" in schema["required"], name
        assert "anyOf" not in schema["properties"]["user_id"], name
    assert all("security" not in op for _, _, op in _operations(document))
