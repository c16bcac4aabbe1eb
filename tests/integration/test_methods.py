"""A method a path does not serve is 405, and ``Allow`` lists every method the path does serve."""

from __future__ import annotations

import re
from typing import Any

import pytest

from parley.api.app import create_app
from tests.conftest import AppHarness

_DOCUMENTED = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _paths(harness: AppHarness) -> dict[str, set[str]]:
    schema: dict[str, Any] = create_app(harness.services.settings).openapi()
    return {
        re.sub(r"\{[^}]+\}", "x", path): {m.upper() for m in item if m in _DOCUMENTED}
        for path, item in schema["paths"].items()
    }


async def test_every_path_lists_all_its_methods_in_allow(harness: AppHarness) -> None:
    paths = _paths(harness)
    assert paths["/v1/sessions/x"] == {"GET", "DELETE"}
    for path, methods in paths.items():
        # "/v1/sessions/import" is also the path of a session named "import": GET and DELETE are that
        # session's (404 when there is none), not a wrong method.
        served_elsewhere = paths["/v1/sessions/x"] if path == "/v1/sessions/import" else set()
        for method in sorted(
            {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} - methods - served_elsewhere
        ):
            response = await harness.client.request(method, path, headers={"X-User-Id": "alice"})
            assert response.status_code == 405, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert allowed == methods, (method, path)


@pytest.mark.parametrize("method", ["PUT", "OPTIONS", "PATCH"])
async def test_session_path_allows_get_and_delete(harness: AppHarness, method: str) -> None:
    response = await harness.client.request(method, "/v1/sessions/some-id")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"
