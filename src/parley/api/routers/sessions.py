"""``/v1/sessions``: the caller's sessions; ``/v1/sessions/{id}``: status, resume, transcript, deletion."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response

from parley.api.auth import Authenticated, PrincipalDep
from parley.api.deps import (
    USER_ID_HEADER,
    CallerDep,
    JsonBody,
    ServicesDep,
    UserIdHeader,
    ViewerDep,
    acting_user_id,
)
from parley.api.event_stream import (
    STREAM_RESPONSE,
    event_stream_response,
    message_headers,
    wants_event_stream,
)
from parley.api.json_body import JsonRoute
from parley.api.routers.chat import callback_url_of, message_response, resolve_wait
from parley.api.schemas import (
    ID_PATTERN,
    CheckpointItem,
    HistoryOut,
    MessageOut,
    Problem,
    ResumeRequest,
    RewindRequest,
    SessionListItem,
    SessionOut,
    SessionsOut,
    TranscriptItem,
    TranscriptOut,
)
from parley.core.auth import Action, answerer_of, answers_reviews_only
from parley.core.errors import InvalidInput
from parley.core.history import CHECKPOINT_ID_PATTERN, list_history
from parley.core.messages import resume_session, wait_for_terminal
from parley.core.rewind import submit_rewind
from parley.core.sessions import (
    CURSOR_PATTERN,
    SESSIONS_CURSOR_PATTERN,
    decode_cursor,
    delete_session,
    encode_cursor,
    encode_sessions_cursor,
    list_sessions,
)
from parley.settings import Settings

router = APIRouter(
    prefix="/v1/sessions", tags=["sessions"], route_class=JsonRoute, dependencies=[Authenticated]
)

SessionId = Annotated[str, Path(min_length=1, max_length=100, pattern=ID_PATTERN)]
_ERRORS: dict[int | str, dict[str, object]] = {404: {"model": Problem}, 422: {"model": Problem}}
PageLimit = Annotated[int, Query(ge=1, le=200, description="Items per page.")]
"""The page size of every paginated list of this router (sessions, transcript, history)."""


@router.get(
    "",
    response_model=SessionsOut,
    responses={
        403: {"model": Problem, "description": "user_id names another user, and the caller is no operator."},
        422: {"model": Problem},
    },
    summary="The caller's sessions, most recent activity first, paginated",
)
async def get_sessions(
    services: ServicesDep,
    viewer: ViewerDep,
    limit: PageLimit = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=SESSIONS_CURSOR_PATTERN, description="The previous page's next_cursor."),
    ] = None,
    user_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=r"^[^\s\x00-\x1f]+$",
            description="Operators: list this user's sessions instead of their own.",
        ),
    ] = None,
) -> SessionsOut:
    page = await list_sessions(
        store=services.store,
        user_id=viewer.user_id,
        operator=viewer.operator,
        owner_id=user_id,
        cursor=cursor,
        limit=limit,
    )
    return SessionsOut(
        items=[SessionListItem.of(summary) for summary in page.items],
        next_cursor=None if page.next_position is None else encode_sessions_cursor(page.next_position),
    )


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
    return SessionOut.of(record, operator=viewer.operator)


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists or objects more than ``limit`` levels deep (a scalar is 0, ``[]``
    is 1). Iterative, so a value deep enough to break a recursive walk cannot break this one."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _check_value(value: Any, *, settings: Settings) -> None:
    """Refuse, before anything is stored, a resume value the turn could not carry: the checkpoint
    serialiser gives up on deep nesting (the turn would fail after the answer was accepted), and a
    large value is copied into the message row and every checkpoint until the graph moves past it."""
    if _nested_deeper_than(value, settings.max_value_depth):
        raise InvalidInput(
            f"must not nest more than {settings.max_value_depth} levels deep", loc=["body", "value"]
        )
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > settings.max_value_bytes:
        raise InvalidInput(
            f"must be at most {settings.max_value_bytes} bytes as JSON (got {size})", loc=["body", "value"]
        )


@router.post(
    "/{session_id}/resume",
    response_model=MessageOut,
    dependencies=[JsonBody],
    responses={
        200: STREAM_RESPONSE,
        202: {"model": MessageOut, "description": "Accepted; poll Location."},
        403: {"model": Problem, "description": "An operator's review, answered by the end user."},
        404: {"model": Problem},
        409: {"model": Problem, "description": "The interrupt is not pending (answered, unknown, stale)."},
        422: {"model": Problem},
    },
    summary="Answer a pending interrupt; get the turn's outcome, or 202 and a message to poll",
)
async def post_resume(
    request: Request,
    body: ResumeRequest,
    services: ServicesDep,
    caller: CallerDep,
    session_id: SessionId,
    prefer: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> Response:
    answering_for = acting_user_id(caller, body.user_id, action=Action.RESUME, loc=("body", "user_id"))
    # An operator's or admin's key answers as itself, whatever user the body names: the message's actor
    # (and the scope of its idempotency keys) is the key.
    user_id = f"key:{caller.key_id}" if caller.authenticated and caller.sees_all else answering_for
    operator = caller.sees_all
    wait = resolve_wait(requested=body.wait, prefer=prefer, settings=services.settings)
    _check_value(body.value, settings=services.settings)
    callback_url = callback_url_of(body.callback_url, principal=caller, policy=services.webhooks)
    record = await resume_session(
        store=services.store,
        runner=services.runner,
        session_id=session_id,
        user_id=user_id,
        operator=operator,
        interrupt_id=body.interrupt_id,
        value=body.value,
        idempotency_key=idempotency_key,
        answerer=answerer_of(caller, user_id=answering_for),
        reviews_only=answers_reviews_only(caller),
        callback_url=callback_url,
    )
    services.tracing.accepted(record.message_id)  # its turn's span continues this request's trace
    if wants_event_stream(request):
        return event_stream_response(
            request,
            services,
            message=record,
            operator=operator,
            headers=message_headers(record),
        )
    record = await wait_for_terminal(store=services.store, bus=services.bus, message=record, timeout=wait)
    return message_response(record, operator=operator, prefer_async=wait == 0 and prefer is not None)


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
    limit: PageLimit = 50,
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


@router.get(
    "/{session_id}/history",
    response_model=HistoryOut,
    responses=_ERRORS,
    summary="The session's checkpoints, newest first, paginated",
)
async def get_history(
    services: ServicesDep,
    viewer: ViewerDep,
    session_id: SessionId,
    limit: PageLimit = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=CHECKPOINT_ID_PATTERN, description="The previous page's next_cursor."),
    ] = None,
) -> HistoryOut:
    page = await list_history(
        store=services.store,
        checkpointer=services.checkpointer,
        session_id=session_id,
        user_id=viewer.user_id,
        operator=viewer.operator,
        before=cursor,
        limit=limit,
    )
    return HistoryOut(items=[CheckpointItem.of(entry) for entry in page.items], next_cursor=page.next_before)


@router.post(
    "/{session_id}/rewind",
    response_model=MessageOut,
    dependencies=[JsonBody],
    responses={
        202: {"model": MessageOut, "description": "Accepted; poll Location."},
        404: {"model": Problem, "description": "No such session, or no such checkpoint in it."},
        409: {"model": Problem, "description": "A message of the session is queued or running."},
        422: {"model": Problem},
    },
    summary="Continue the session from one of its checkpoints (time travel); later messages fork from it",
)
async def post_rewind(
    body: RewindRequest,
    services: ServicesDep,
    principal: PrincipalDep,
    session_id: SessionId,
    prefer: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> Response:
    user_id = acting_user_id(principal, body.user_id, action=Action.ACT, loc=("body", "user_id"))
    wait = resolve_wait(requested=body.wait, prefer=prefer, settings=services.settings)
    record = await submit_rewind(
        store=services.store,
        runner=services.runner,
        checkpointer=services.checkpointer,
        session_id=session_id,
        user_id=user_id,
        checkpoint_id=body.checkpoint_id,
        idempotency_key=idempotency_key,
    )
    record = await wait_for_terminal(store=services.store, bus=services.bus, message=record, timeout=wait)
    return message_response(record, operator=False, prefer_async=wait == 0 and prefer is not None)


@router.delete(
    "/{session_id}",
    status_code=204,
    response_class=Response,
    responses={**_ERRORS, 409: {"model": Problem, "description": "A turn is still pending."}},
    summary="Delete the session and everything stored for it",
)
async def remove_session(
    services: ServicesDep, principal: PrincipalDep, session_id: SessionId, user_id: UserIdHeader = None
) -> Response:
    owner = acting_user_id(principal, user_id, action=Action.ACT, loc=("header", USER_ID_HEADER))
    await delete_session(
        store=services.store,
        checkpointer=services.checkpointer,
        session_id=session_id,
        user_id=owner,
    )
    return Response(status_code=204)
