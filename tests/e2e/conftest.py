from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import Backend
from tests.e2e.deployments import Deployment
from tests.e2e.server import ServerProcess, worker_process


@pytest.fixture
def start_server(tmp_path: Path, backend: Backend) -> Iterator[Any]:
    """``start_server(data_dir=None, **env)``: a ``parley serve`` on the test's backend (and, for the queue,
    one ``parley worker`` beside it, started with the first server)."""
    processes: list[ServerProcess] = []

    def _start(data_dir: Path | None = None, **env: str) -> ServerProcess:
        data = data_dir or backend.data_dir
        settings = {**backend.env(), **env}
        if backend.queue and not any(p.command[0] == "worker" for p in processes):
            processes.append(worker_process(data, env=settings).start())
        server = ServerProcess(data, env=settings)
        processes.append(server)
        return server.start()

    yield _start
    for process in processes:
        process.kill()


@pytest.fixture
def make_deployment(backend: Backend, tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    """``make_deployment(**env)``: the test's backend deployed — for the queue, two API processes and two
    workers from ``deploy/Procfile`` — started, with extra settings."""
    started: list[Deployment] = []

    def _make(**env: str) -> Deployment:
        scale = 2 if backend.queue else 1
        deployment = Deployment(
            backend, tmp_path / f"deployment-{len(started)}", env=env, apis=scale, workers=scale
        )
        started.append(deployment)
        return deployment.start()

    yield _make
    for deployment in started:
        deployment.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
