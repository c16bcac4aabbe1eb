"""The web page's files as the app serves them: ``/`` is the page, everything it loads is served from
``/static`` with a type the browser accepts, nothing is fetched from elsewhere (the page works offline),
and no script inserts text as HTML. What the page does in a browser: tests/e2e/test_page.py."""

from __future__ import annotations

import re

import pytest

from parley.web import STATIC_DIR
from tests.conftest import AppHarness

pytestmark = pytest.mark.sqlite_only

_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


async def test_the_page_is_served_at_the_root(harness: AppHarness) -> None:
    response = await harness.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert '<script type="module" src="/static/main.js">' in response.text
    assert "Content-Security-Policy" in response.text
    # The page is not part of the API's description.
    assert "/" not in (await harness.client.get("/openapi.json")).json()["paths"]


async def test_every_file_the_page_loads_is_served_with_its_type(harness: AppHarness) -> None:
    page = (await harness.client.get("/")).text
    wanted = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', page))
    for script in STATIC_DIR.glob("*.js"):
        wanted |= {f"/static/{name}" for name in re.findall(r'from "\./([^"]+)"', script.read_text())}
    assert {"/static/main.js", "/static/page.css", "/static/chat.js", "/static/sse.js"} <= wanted
    for path in sorted(wanted):
        response = await harness.client.get(path)
        assert response.status_code == 200, path
        suffix = path[path.rfind(".") :]
        assert response.headers["content-type"].startswith(_TYPES[suffix]), path


async def test_a_file_outside_the_page_is_not_served(harness: AppHarness) -> None:
    for path in ("/static/../__init__.py", "/static/%2e%2e/__init__.py", "/static/missing.js"):
        response = await harness.client.get(path)
        assert response.status_code == 404, path


def test_the_page_needs_nothing_from_elsewhere_and_writes_no_html() -> None:
    files = [p for p in STATIC_DIR.iterdir() if p.suffix in _TYPES]
    assert files
    for path in files:
        text = path.read_text()
        # No CDN, font service or other origin: the page works offline.
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path.name
        if path.suffix == ".js":
            # Model and user text go in as text nodes, never parsed as markup.
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in text, f"{path.name} uses {sink}"
