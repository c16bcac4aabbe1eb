"""``GET /v1/messages/{id}``: poll a message's turn."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from sse_starlette import EventSourceResponse

from parley.api.auth import Authenticated, PrincipalDep
from parley.api.deps import USER_ID_HEADER, ServicesDep, UserIdHeader, ViewerDep, acting_user_id
from parley.api.event_stream import STREAM_RESPONSE, LastEventId, event_stream_response
from parley.api.schemas import ID_PATTERN, DeliveriesOut, DeliveryOut, MessageOut, Problem
from parley.core.auth import Action
from parley.core.messages import cancel_message

router = APIRouter(prefix="/v1/messages", tags=["messages"], dependencies=[Authenticated])

MessageId = Annotated[str, Path(min_length=1, max_length=100, pattern=ID_PATTERN)]
CANCEL_WAIT_SECONDS = 10.0


@router.get(
    "/{message_id}",
    response_model=MessageOut,
    responses={404: {"model": Problem}, 422: {"model": Problem}},
    summary="The message resource: status, reply, interrupt, error",
)
async def get_message(
    services: ServicesDep,
    viewer: ViewerDep,
    message_id: MessageId,
) -> MessageOut:
    record = await services.store.get_message(
        message_id=message_id, user_id=viewer.user_id, operator=viewer.operator
    )
    return MessageOut.of(record, operator=viewer.operator)


@router.get(
    "/{message_id}/deliveries",
    response_model=DeliveriesOut,
    responses={404: {"model": Problem}, 422: {"model": Problem}},
    summary="The message's completion webhook: each attempt's time, status code and error",
)
async def get_deliveries(
    services: ServicesDep,
    viewer: ViewerDep,
    message_id: MessageId,
) -> DeliveriesOut:
    views = await services.store.list_deliveries(
        message_id=message_id, user_id=viewer.user_id, operator=viewer.operator
    )
    return DeliveriesOut(items=[DeliveryOut.of(view) for view in views])


@router.get(
    "/{message_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: STREAM_RESPONSE,
        404: {"model": Problem},
        422: {"model": Problem},
        503: {"model": Problem, "description": "The instance holds its limit of event streams."},
    },
    summary="The message's events as Server-Sent Events: tokens, node updates, interrupts, done",
)
async def get_message_events(
    request: Request,
    services: ServicesDep,
    viewer: ViewerDep,
    message_id: MessageId,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """Replays the stored events after ``Last-Event-ID`` (all of them without it), then follows the turn
    live; ends after ``done``. Works before the turn starts, while it runs and after it ended."""
    record = await services.store.get_message(
        message_id=message_id, user_id=viewer.user_id, operator=viewer.operator
    )
    return event_stream_response(
        request,
        services,
        message=record,
        operator=viewer.operator,
        after=int(last_event_id) if last_event_id is not None else 0,
    )


@router.post(
    "/{message_id}/cancel",
    response_model=MessageOut,
    responses={
        202: {"model": MessageOut, "description": "Cancellation requested; the turn is still stopping."},
        404: {"model": Problem},
        409: {
            "model": Problem,
            "description": "The message had already ended, or its turn has already performed an action.",
        },
    },
    summary="Cancel a queued or running turn",
)
async def post_cancel(
    services: ServicesDep,
    principal: PrincipalDep,
    message_id: MessageId,
    response: Response,
    user_id: UserIdHeader = None,
) -> MessageOut:
    owner = acting_user_id(principal, user_id, action=Action.ACT, loc=("header", USER_ID_HEADER))
    record = await cancel_message(
        store=services.store,
        runner=services.runner,
        bus=services.bus,
        events=services.journal,
        message_id=message_id,
        user_id=owner,
        wait=CANCEL_WAIT_SECONDS,
    )
    if not record.status.is_terminal:
        response.status_code = 202
        response.headers["Location"] = f"/v1/messages/{record.message_id}"
    # Cancelling knows no role: the answer is the end user's view.
    return MessageOut.of(record, operator=False)
