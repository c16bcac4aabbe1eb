from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.racing import DEPLOYMENTS, Deployment
from tests.e2e.server import ServerProcess


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    servers: list[ServerProcess] = []

    def _start(data_dir: Path | None = None, **env: str) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / "data", env=env)
        servers.append(server)
        return server.start()

    yield _start
    for server in servers:
        server.kill()


@pytest.fixture(params=sorted(DEPLOYMENTS))
def make_deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    """Start a deployment of each kind in ``DEPLOYMENTS`` (the test runs once per kind), with extra settings."""
    started: list[Deployment] = []

    def _make(**env: str) -> Deployment:
        deployment = DEPLOYMENTS[request.param](tmp_path / f"{request.param}-{len(started)}", env)
        started.append(deployment)
        return deployment

    yield _make
    for deployment in started:
        deployment.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
