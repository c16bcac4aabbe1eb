from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import AppHarness


async def test_health_and_readiness(harness: AppHarness) -> None:
    assert (await harness.client.get("/healthz")).json() == {"status": "ok"}
    assert (await harness.client.get("/readyz")).json() == {"status": "ready"}


async def test_not_ready_once_storage_is_gone(harness: AppHarness) -> None:
    await harness.services.store.close()
    response = await harness.client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"


async def test_openapi_documents_the_api(harness: AppHarness) -> None:
    spec: dict[str, Any] = (await harness.client.get("/openapi.json")).json()
    for path in [
        "/v1/chat",
        "/v1/messages/{message_id}",
        "/v1/sessions/{session_id}",
        "/v1/sessions/{session_id}/messages",
        "/healthz",
        "/readyz",
    ]:
        assert path in spec["paths"]
    assert "202" in spec["paths"]["/v1/chat"]["post"]["responses"]
    assert (await harness.client.get("/docs")).status_code == 200


async def test_an_unexpected_error_is_a_500_problem_without_internals(harness: AppHarness) -> None:
    async def explode(**_: Any) -> None:
        raise RuntimeError("internal detail /etc/secret")

    harness.services.store.get_session = explode  # type: ignore[method-assign]
    response = await harness.client.get("/v1/sessions/x", headers={"X-User-Id": "alice"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text
    assert "Traceback" not in response.text


@pytest.mark.inprocess_only  # reaches into the in-process runner or its checkpointer
async def test_startup_says_when_no_model_is_configured(
    harness_factory: Any, make_settings: Any, caplog: Any
) -> None:
    await harness_factory(make_settings(model=None))
    assert "PARLEY_MODEL is not set" in caplog.text
