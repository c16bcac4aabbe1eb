"""Shared fixtures: settings on a temporary data dir, and the real app served in-process; and the rule for
tests that need an external service."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.api.app import create_app
from parley.api.deps import Services
from parley.runners.worker_main import run_worker
from parley.settings import Settings
from tests.backends import BACKENDS, Backend, PostgresDatabases, postgres_available

# pytester: tests/unit/test_service_skips.py runs a tiny suite with these hooks.
pytest_plugins = ["pytester"]

SERVICE_MISSING = "service not available: "
"""How a skip for a missing service starts (``require_service`` writes it; a ``skipif`` reason may too)."""
_MISSING_SERVICE_TESTS = pytest.StashKey[list[tuple[str, str]]]()


def require_service(name: str, available: bool, why: str = "") -> None:
    """Skip a test whose external service (PostgreSQL, Redis, …) is missing here.

    The hooks below list such tests at the end of the run, and turn them into failures when
    ``PARLEY_REQUIRE_SERVICES=1`` (``.ci/run`` sets it: CI must exercise everything).
    """
    if not available:
        pytest.skip(f"{SERVICE_MISSING}{name}{' (' + why + ')' if why else ''}")


def _services_required() -> bool:
    return os.environ.get("PARLEY_REQUIRE_SERVICES") == "1"


def _missing_service(report: pytest.TestReport) -> str | None:
    """The reason, if the report is a skip for a missing service."""
    if not report.skipped or hasattr(report, "wasxfail") or not isinstance(report.longrepr, tuple):
        return None
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    return reason if reason.startswith(SERVICE_MISSING) else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report: pytest.TestReport = yield
    reason = _missing_service(report)
    if reason is not None:
        item.config.stash.setdefault(_MISSING_SERVICE_TESTS, []).append((report.nodeid, reason))
        if _services_required():
            report.outcome = "failed"
            report.longrepr = f"{reason}; PARLEY_REQUIRE_SERVICES=1 forbids skipping it"
    return report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say plainly which tests did not run for want of a service, and what that means here."""
    missing = config.stash.get(_MISSING_SERVICE_TESTS, [])
    if not missing:
        return
    terminalreporter.section("tests that need a service not running here")
    for nodeid, reason in missing:
        terminalreporter.line(f"{nodeid}: {reason.removeprefix(SERVICE_MISSING)}")
    if _services_required():
        terminalreporter.line(f"{len(missing)} not run: PARLEY_REQUIRE_SERVICES=1 makes each a failure.")
    else:
        terminalreporter.line(
            f"{len(missing)} skipped; start the services to run them (PARLEY_REQUIRE_SERVICES=1 fails them)."
        )


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
        yield Backend(name=request.param, database_url=url, data_dir=data_dir)
    finally:
        postgres_databases.drop(url)


_RUNS_TURNS = {"make_settings", "start_server", "make_deployment"}
"""Fixtures that start Parley with a runner: where the queue variant tests something of its own."""


_ALLOWED_BY_MARKER = {
    "sqlite_only": {"sqlite"},
    "postgres_only": {"postgres", "queue"},
    "inprocess_only": {"sqlite", "postgres"},
    "queue_only": {"queue"},
}


def _unwanted(item: pytest.Item) -> bool:
    """Whether this backend variant of a test says nothing the others do not (see below)."""
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get("backend") if callspec is not None else None
    if param is None:
        return False
    for marker, allowed in _ALLOWED_BY_MARKER.items():
        if item.get_closest_marker(marker) and param not in allowed:
            return True
    # The queue variant differs only where turns run: a test that starts no runner (the store's) is the
    # PostgreSQL one again.
    return param == "queue" and not _RUNS_TURNS & set(item.fixturenames)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``sqlite_only`` (they test SQLite's own mechanics: its lock file, a writer outside
    Parley) run on SQLite alone; ``postgres_only`` ones (races between pooled connections, which SQLite's
    single connection rules out by construction) on PostgreSQL alone; ``inprocess_only`` ones (they reach
    into the in-process runner) not on the queue. The other variants are not collected at all."""
    keep = [item for item in items if not _unwanted(item)]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if _unwanted(item)])
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

    def __init__(
        self, client: httpx.AsyncClient, services: Services, backend: Backend, *, app: Any = None
    ) -> None:
        self.client = client
        self.services = services
        self.backend = backend
        self.app = app

    async def chat(self, user_id: str = "alice", **body: Any) -> httpx.Response:
        return await self.client.post("/v1/chat", json={"user_id": user_id, **body})


@asynccontextmanager
async def _worker(settings: Settings) -> AsyncIterator[None]:
    """A ``parley worker`` in this event loop, for the queue backend; stopped when the block ends."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop=stop, ready=ready))
    started = asyncio.create_task(ready.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        task.result()  # raises what stopped the worker from starting
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.fixture
async def harness_factory(backend: Backend) -> AsyncIterator[Any]:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:

        async def _start(settings: Settings) -> AppHarness:
            if settings.runner == "queue":
                # The API instance runs no turn: a worker does, here in the same event loop.
                await stack.enter_async_context(_worker(settings))
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                    base_url="http://parley",
                )
            )
            return AppHarness(client, app.state.services, backend, app=app)

        yield _start


@pytest.fixture
async def harness(harness_factory: Any, make_settings: Any) -> AppHarness:
    harness: AppHarness = await harness_factory(make_settings())
    return harness
