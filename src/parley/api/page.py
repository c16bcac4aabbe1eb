"""The web chat page: ``/`` serves ``index.html``, ``/static/…`` the files it loads (``parley.web``).

The page is not part of the API: it is left out of the OpenAPI document, and it only calls the API as any
client would.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from parley.web import STATIC_DIR

# Revalidate on every load (the ETag makes that a 304): a page newer than the browser's copy is used at
# once after an upgrade, never half old, half new.
_REVALIDATE = {"Cache-Control": "no-cache"}


class _PageFiles(StaticFiles):
    """Static files that the browser checks before reusing."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(_REVALIDATE)
        return response


async def _index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_REVALIDATE)


def install_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/static``."""
    app.add_api_route("/", _index, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/static", _PageFiles(directory=STATIC_DIR), name="static")
