"""Shared fixtures: settings on a temporary data dir, and the real app served in-process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.api.app import create_app
from parley.api.deps import Services
from parley.settings import Settings

REQUIRE_SERVICES = os.environ.get("PARLEY_REQUIRE_SERVICES") == "1"


def require_service(name: str, available: bool, why: str = "") -> None:
    """Skip a test whose external service is missing — or fail it, when CI requires every service."""
    if available:
        return
    message = f"service not available: {name}{' (' + why + ')' if why else ''}"
    if REQUIRE_SERVICES:
        pytest.fail(message + "; PARLEY_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    def _make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": tmp_path / "data", "model": "scripted"}
        values.update(overrides)
        return Settings(**values)

    return _make


class AppHarness:
    """The real app with its lifespan running, and an HTTP client bound to it in-process."""

    def __init__(self, client: httpx.AsyncClient, services: Services) -> None:
        self.client = client
        self.services = services

    async def chat(self, user_id: str = "alice", **body: Any) -> httpx.Response:
        return await self.client.post("/v1/chat", json={"user_id": user_id, **body})


@pytest.fixture
async def harness_factory() -> AsyncIterator[Any]:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:

        async def _start(settings: Settings) -> AppHarness:
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                    base_url="http://parley",
                )
            )
            return AppHarness(client, app.state.services)

        yield _start


@pytest.fixture
async def harness(harness_factory: Any, make_settings: Any) -> AppHarness:
    harness: AppHarness = await harness_factory(make_settings())
    return harness
