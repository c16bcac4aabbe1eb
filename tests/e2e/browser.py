"""A real browser for the web page's tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download is not reachable here, so it launches the system's Chromium
(``executable_path``); ``.ci/run`` installs the package where it is missing. Screenshots of what the tests
saw go to ``tests/artifacts/`` (ignored by git), at a desktop size and a phone's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright

from tests.e2e.server import REPO

CHROMIUM = Path(os.environ.get("PARLEY_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "tests" / "artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# Headless, and nothing that reaches past the loopback: no sync, updates, QUIC or background fetches.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} not found (apt-get install chromium; .ci/run does)"
    return None


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def screenshot(page: Page, name: str) -> Path:
    """Save what the page shows now, whole, at its size and at a phone's; the desktop file's path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    path = ARTIFACTS / f"{stem}.png"
    page.screenshot(path=str(path), full_page=True)
    size = page.viewport_size or DESKTOP
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / f"{stem}-phone.png"), full_page=True)
    page.set_viewport_size(size)
    return path
