"""The dependency rule of the layout (docs/architecture.md): every arrow points down into ``core``.

``core`` holds the domain and the ports (``Store``, ``Runner`` and their records); ``storage`` and ``runners``
implement them, ``api`` and ``bots`` use them. Nothing in ``core`` may import what implements or serves it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "parley"
FORBIDDEN_IN_CORE = ("parley.api", "parley.storage", "parley.runners", "parley.bots", "parley.models")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", sorted(p.name for p in (SRC / "core").glob("*.py")))
def test_core_imports_nothing_that_implements_or_serves_it(module: str) -> None:
    imported = _imports(SRC / "core" / module)
    offending = sorted(name for name in imported if name.startswith(FORBIDDEN_IN_CORE))
    assert offending == [], f"core/{module} imports {offending}"


def test_storage_and_runners_do_not_import_the_http_layer() -> None:
    for folder in ("storage", "runners"):
        for path in (SRC / folder).rglob("*.py"):
            assert not any(name.startswith("parley.api") for name in _imports(path)), path


def test_the_terminal_chat_knows_the_service_only_through_http() -> None:
    """``parley chat`` talks to a service that may be another version on another machine: it imports no
    module of the server, only its own."""
    for path in (SRC / "cli_chat").rglob("*.py"):
        server_modules = sorted(
            name
            for name in _imports(path)
            if name.startswith("parley") and not name.startswith("parley.cli_chat")
        )
        assert server_modules == [], f"{path.name} imports {server_modules}"
