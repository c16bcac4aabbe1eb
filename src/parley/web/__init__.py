"""The web chat page: static HTML, CSS and JavaScript, served by the app as they are (no build step, and
nothing fetched from elsewhere, so the page works offline). ``api/page.py`` mounts them."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The page's files; ``index.html`` is the page at ``/``."""
