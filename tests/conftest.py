"""Shared fixtures: settings on a temporary data dir, and the real app served in-process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.api.app import create_app
from parley.api.deps import Services
from parley.settings import Settings
from tests.backends import BACKENDS, Backend, PostgresDatabases, postgres_available

REQUIRE_SERVICES = os.environ.get("PARLEY_REQUIRE_SERVICES") == "1"


def require_service(name: str, available: bool, why: str = "") -> None:
    """Skip a test whose external service is missing — or fail it, when CI requires every service."""
    if available:
        return
    message = f"service not available: {name}{' (' + why + ')' if why else ''}"
    if REQUIRE_SERVICES:
        pytest.fail(message + "; PARLEY_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases | None]:
    """This run's PostgreSQL databases (None when no PostgreSQL answers); all dropped at the end."""
    available, _ = postgres_available()
    if not available:
        yield None
        return
    databases = PostgresDatabases()
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_databases: PostgresDatabases | None
) -> Iterator[Backend]:
    """Each test that stores anything runs once per backend: SQLite, and a PostgreSQL database of its own."""
    data_dir = tmp_path / "data"
    if request.param == "sqlite":
        yield Backend(name="sqlite", database_url=None, data_dir=data_dir)
        return
    if postgres_databases is None:
        require_service("postgresql", False, postgres_available()[1])
    assert postgres_databases is not None
    url = postgres_databases.create()
    try:
        yield Backend(name="postgres", database_url=url, data_dir=data_dir)
    finally:
        postgres_databases.drop(url)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``sqlite_only`` (they test SQLite's own mechanics: its lock file, a writer outside
    Parley) run on SQLite alone: their PostgreSQL variants are not collected at all."""
    keep, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("backend") == "postgres"
        (dropped if on_postgres and item.get_closest_marker("sqlite_only") else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture
def make_settings(backend: Backend) -> Any:
    def _make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {**backend.settings_values(), "model": "scripted"}
        values.update(overrides)
        return Settings(**values)

    return _make


class AppHarness:
    """The real app with its lifespan running, and an HTTP client bound to it in-process."""

    def __init__(self, client: httpx.AsyncClient, services: Services, backend: Backend) -> None:
        self.client = client
        self.services = services
        self.backend = backend

    async def chat(self, user_id: str = "alice", **body: Any) -> httpx.Response:
        return await self.client.post("/v1/chat", json={"user_id": user_id, **body})


@pytest.fixture
async def harness_factory(backend: Backend) -> AsyncIterator[Any]:
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
            return AppHarness(client, app.state.services, backend)

        yield _start


@pytest.fixture
async def harness(harness_factory: Any, make_settings: Any) -> AppHarness:
    harness: AppHarness = await harness_factory(make_settings())
    return harness
