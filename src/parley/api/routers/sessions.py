"""``/v1/sessions/{id}``: status, transcript, deletion."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response

from parley.api.deps import JsonBody, Role, RoleDep, ServicesDep, UserIdHeader, ViewerDep
from parley.api.json_body import JsonRoute
from parley.api.routers.chat import message_response, resolve_wait
from parley.api.schemas import MessageOut, Problem, ResumeRequest, SessionOut, TranscriptItem, TranscriptOut
from parley.core.messages import resume_session, wait_for_terminal
from parley.core.sessions import CURSOR_PATTERN, decode_cursor, delete_session, encode_cursor

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], route_class=JsonRoute)

SessionId = Annotated[str, Path(min_length=1, max_length=100)]
_ERRORS: dict[int | str, dict[str, object]] = {404: {"model": Problem}, 422: {"model": Problem}}


@router.get(
    "/{session_id}",
    response_model=SessionOut,
    responses=_ERRORS,
    summary="Session status, pending interrupts, counts",
)
async def get_session(services: ServicesDep, viewer: ViewerDep, session_id: SessionId) -> SessionOut:
    record = await services.store.get_session(
        session_id=session_id, user_id=viewer.user_id, operator=viewer.operator
    )
    return SessionOut.of(record)


@router.post(
    "/{session_id}/resume",
    response_model=MessageOut,
    dependencies=[JsonBody],
    responses={
        202: {"model": MessageOut, "description": "Accepted; poll Location."},
        403: {"model": Problem, "description": "An operator's review, answered by the end user."},
        404: {"model": Problem},
        409: {"model": Problem, "description": "The interrupt is not pending (answered, unknown, stale)."},
        422: {"model": Problem},
    },
    summary="Answer a pending interrupt; get the turn's outcome, or 202 and a message to poll",
)
async def post_resume(
    body: ResumeRequest,
    services: ServicesDep,
    role: RoleDep,
    session_id: SessionId,
    prefer: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> Response:
    wait = resolve_wait(requested=body.wait, prefer=prefer, settings=services.settings)
    record = await resume_session(
        store=services.store,
        runner=services.runner,
        session_id=session_id,
        user_id=body.user_id,
        operator=role is Role.OPERATOR,
        interrupt_id=body.interrupt_id,
        value=body.value,
        idempotency_key=idempotency_key,
    )
    record = await wait_for_terminal(store=services.store, bus=services.bus, message=record, timeout=wait)
    return message_response(record, prefer_async=wait == 0 and prefer is not None)


@router.get(
    "/{session_id}/messages",
    response_model=TranscriptOut,
    responses=_ERRORS,
    summary="The transcript, oldest first, paginated",
)
async def get_transcript(
    services: ServicesDep,
    viewer: ViewerDep,
    session_id: SessionId,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="The previous page's next_cursor."),
    ] = None,
) -> TranscriptOut:
    after = decode_cursor(cursor) if cursor is not None else None
    page = await services.store.list_transcript(
        session_id=session_id, user_id=viewer.user_id, after=after, limit=limit, operator=viewer.operator
    )
    return TranscriptOut(
        items=[TranscriptItem.of(entry) for entry in page.items],
        next_cursor=None if page.next_position is None else encode_cursor(page.next_position),
    )


@router.delete(
    "/{session_id}",
    status_code=204,
    response_class=Response,
    responses={**_ERRORS, 409: {"model": Problem, "description": "A turn is still pending."}},
    summary="Delete the session and everything stored for it",
)
async def remove_session(services: ServicesDep, user_id: UserIdHeader, session_id: SessionId) -> Response:
    await delete_session(
        store=services.store,
        checkpointer=services.checkpointer,
        session_id=session_id,
        user_id=user_id,
    )
    return Response(status_code=204)
