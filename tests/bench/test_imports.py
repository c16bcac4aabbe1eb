"""Every benchmark module imports: the benchmarks use Parley's internals (the baseline app, the graph
in-process), and a rename there must fail the suite, not the next person to run ``make bench``."""

from __future__ import annotations

import importlib
import pkgutil

import bench.peers
import pytest

import bench


def _modules() -> list[str]:
    found = []
    for package in (bench, bench.peers):
        found += [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    return sorted(found)


@pytest.mark.parametrize("name", _modules())
def test_the_benchmark_module_imports(name: str) -> None:
    importlib.import_module(name)
