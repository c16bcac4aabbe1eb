"""The OpenAPI document says what the server does: problem+json errors, the limits settings impose."""

from __future__ import annotations

from typing import Any

import pytest

from parley.api.app import create_app
from parley.core.sessions import SESSIONS_CURSOR_PATTERN
from parley.settings import Settings

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings = Settings(model="scripted", max_wait=7.5, default_wait=1, max_message_chars=123)
    schema: dict[str, Any] = create_app(settings).openapi()
    return schema


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]


def test_every_error_is_problem_json_with_the_problem_schema(document: dict[str, Any]) -> None:
    errors = [
        (path, method, status, response)
        for path, method, op in _operations(document)
        for status, response in op["responses"].items()
        if int(status) >= 400
    ]
    assert len(errors) > 30
    for path, method, status, response in errors:
        assert response["content"] == PROBLEM, (path, method, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ValidationError" not in document["components"]["schemas"]


def test_operations_reading_a_body_declare_every_way_it_is_refused(document: dict[str, Any]) -> None:
    with_body = [(path, op) for path, _, op in _operations(document) if "requestBody" in op]
    assert sorted(path for path, _ in with_body) == [
        "/v1/chat",
        "/v1/sessions/import",
        "/v1/sessions/{session_id}/resume",
        "/v1/sessions/{session_id}/rewind",
    ]
    for path, op in with_body:
        assert {"400", "413", "415", "422"} <= set(op["responses"]), path


def test_the_roles_header_is_an_enum_and_its_403_is_declared(document: dict[str, Any]) -> None:
    assert document["components"]["schemas"]["Role"]["enum"] == ["user", "operator"]
    for path, method, op in _operations(document):
        headers = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "header"}
        if "X-Role" in headers:
            assert headers["X-Role"]["schema"]["$ref"] == "#/components/schemas/Role", (path, method)
            assert "403" in op["responses"], (path, method)


def test_optional_parameters_are_absent_rather_than_null(document: dict[str, Any]) -> None:
    for path, method, op in _operations(document):
        for parameter in op.get("parameters", []):
            assert "anyOf" not in parameter["schema"], (path, method, parameter["name"])


def test_limits_from_settings_are_in_the_request_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in ("ChatRequest", "ResumeRequest", "RewindRequest"):
        number = next(b for b in schemas[name]["properties"]["wait"]["anyOf"] if b.get("type") == "number")
        assert number["minimum"] == 0
        assert number["maximum"] == 7.5
    message = schemas["ChatRequest"]["properties"]["message"]
    assert message["maxLength"] == 123
    assert message["pattern"] == r"^[^\u0000]*[^\s\u0000][^\u0000]*$"  # not blank, and no NUL


def test_the_document_of_an_app_follows_its_own_settings() -> None:
    def max_wait(settings: Settings) -> float:
        schema = create_app(settings).openapi()["components"]["schemas"]["ChatRequest"]
        return float(
            next(b for b in schema["properties"]["wait"]["anyOf"] if b.get("type") == "number")["maximum"]
        )

    assert max_wait(Settings(model="scripted", max_wait=3, default_wait=1)) == 3
    assert max_wait(Settings(model="scripted", max_wait=30, default_wait=1)) == 30


def test_the_session_list_states_what_it_accepts(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/sessions"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {"limit", "cursor", "user_id", "X-User-Id", "X-Role"}
    assert (parameters["limit"]["schema"]["minimum"], parameters["limit"]["schema"]["maximum"]) == (1, 200)
    assert parameters["cursor"]["schema"]["pattern"] == SESSIONS_CURSOR_PATTERN
    assert {"200", "403", "422", "503"} <= set(operation["responses"])
    item = document["components"]["schemas"]["SessionListItem"]
    assert set(item["required"]) == {
        "session_id",
        "status",
        "title",
        "message_count",
        "pending_count",
        "created_at",
        "last_activity_at",
    }


def test_callback_url_is_offered_only_where_webhooks_are_on() -> None:
    def bodies(settings: Settings) -> list[dict[str, Any]]:
        schemas = create_app(settings).openapi()["components"]["schemas"]
        return [schemas[name]["properties"] for name in ("ChatRequest", "ResumeRequest")]

    assert all("callback_url" not in body for body in bodies(Settings(model="scripted")))
    on = Settings(
        model="scripted",
        webhook_allowed_hosts=["hooks.example.com"],
        webhook_secret=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )
    for body in bodies(on):
        url = body["callback_url"]
        assert next(b for b in url["anyOf"] if b.get("type") == "string")["maxLength"] == 2048
        assert url["pattern"] == "^[Hh][Tt][Tt][Pp][Ss]?://"  # JSON Schema applies it to strings only
        assert url["format"] == "uri"
