"""``GET /v1/sessions/{id}/export`` and ``POST /v1/sessions/import``: a session as one portable document.

The export streams as it is read; the import spools its body to a temporary file (bounded by
``PARLEY_IMPORT_MAX_BYTES``, not by ``PARLEY_MAX_BODY_BYTES``), which the import then reads — checks in
full, then writes — a part at a time. Neither side holds the document in memory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import ClientDisconnect

from parley.api.auth import Authenticated
from parley.api.deps import AdminOnly, JsonBody, ServicesDep, ViewerDep
from parley.api.errors import PayloadTooLarge
from parley.api.routers.sessions import SessionId
from parley.api.schemas import ImportOut, Problem
from parley.storage.transfer import codec
from parley.storage.transfer.document import CHECKSUM_ALGORITHM, FORMAT, MEMBERS, ROW_ARRAYS, VERSION

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], dependencies=[Authenticated])

IMPORT_PATH = "/v1/sessions/import"

_ROWS = {"type": "array", "items": {"type": "object"}}
_TYPED = {
    "type": "object",
    "required": ["type", "data"],
    "properties": {"type": {"type": "string"}, "data": {"type": "string", "contentEncoding": "base64"}},
    "additionalProperties": False,
}
_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Members in this order; rows are column → value (docs/api.md, The session document).",
    "required": list(MEMBERS),
    "additionalProperties": False,
    "properties": {
        "format": {"const": FORMAT},
        "version": {"type": "integer", "minimum": 1, "maximum": VERSION},
        "graph": {"type": "string"},
        "exported_at": {"type": "string"},
        "session": {"type": "object", "required": ["session_id", "user_id"]},
        **{member: _ROWS for member in ROW_ARRAYS},
        "checkpoints": {
            "type": "array",
            "items": {
                "type": "object",
                "required": sorted(codec.CHECKPOINT_KEYS),
                "additionalProperties": False,
                "properties": {
                    "checkpoint_ns": {"type": "string"},
                    "checkpoint_id": {"type": "string"},
                    "parent_checkpoint_id": {"type": ["string", "null"]},
                    "checkpoint": _TYPED,
                    "metadata": {"type": "object"},
                    "writes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["task_id", "channel", "value"],
                            "properties": {
                                "task_id": {"type": "string"},
                                "channel": {"type": "string"},
                                "value": _TYPED,
                            },
                        },
                    },
                },
            },
        },
        "checksum": {
            "type": "object",
            "required": ["algorithm", "value"],
            "properties": {"algorithm": {"const": CHECKSUM_ALGORITHM}, "value": {"type": "string"}},
        },
    },
}
_DOCUMENT: dict[str, Any] = {
    "description": "A session document (docs/api.md, The session document).",
    "content": {"application/json": {"schema": _SCHEMA}},
}


@router.get(
    "/{session_id}/export",
    response_class=StreamingResponse,
    responses={
        200: _DOCUMENT,
        404: {"model": Problem},
        409: {"model": Problem, "description": "A turn is queued or running."},
        422: {"model": Problem},
    },
    summary="The session as one versioned, checksummed JSON document, streamed",
)
async def export_session(
    services: ServicesDep, viewer: ViewerDep, session_id: SessionId
) -> StreamingResponse:
    stream = await services.transfer.open_export(
        session_id=session_id, user_id=viewer.user_id, operator=viewer.operator
    )
    return StreamingResponse(
        stream,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="parley-session-{session_id}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.post(
    "/import",
    status_code=201,
    response_model=ImportOut,
    dependencies=[AdminOnly, JsonBody],
    openapi_extra={"requestBody": {"required": True, **_DOCUMENT}},
    responses={
        201: {"description": "Created; Location names the session."},
        403: {"model": Problem, "description": "Not an admin key (auth off: not X-Role: operator)."},
        409: {"model": Problem, "description": "The session id is in use (without replace), or mid-turn."},
        413: {"model": Problem, "description": "Larger than PARLEY_IMPORT_MAX_BYTES."},
        422: {"model": Problem, "description": "The document is refused; errors[].field says where."},
    },
    summary="Create a session from an exported document (admins; with auth off, operators)",
)
async def import_session(
    request: Request,
    services: ServicesDep,
    replace: Annotated[
        bool, Query(description="Overwrite a session of the same id (between its turns) instead of 409.")
    ] = False,
) -> Response:
    limit = services.settings.import_max_bytes
    with tempfile.NamedTemporaryFile(prefix="parley-import-", suffix=".json") as spool:
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"The document is larger than {limit} bytes (PARLEY_IMPORT_MAX_BYTES)."
                    )
                spool.write(chunk)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody hears the answer
        spool.flush()
        imported = await services.transfer.import_document(source=Path(spool.name), replace=replace)
    body = ImportOut(session_id=imported.session_id, user_id=imported.user_id, counts=imported.counts)
    return JSONResponse(
        body.model_dump(), status_code=201, headers={"Location": f"/v1/sessions/{imported.session_id}"}
    )
