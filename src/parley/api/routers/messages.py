"""``GET /v1/messages/{id}``: poll a message's turn."""

from __future__ import annotations

from fastapi import APIRouter, Path

from parley.api.deps import ServicesDep, UserIdHeader
from parley.api.schemas import MessageOut, Problem

router = APIRouter(prefix="/v1/messages", tags=["messages"])


@router.get(
    "/{message_id}",
    response_model=MessageOut,
    responses={404: {"model": Problem}, 422: {"model": Problem}},
    summary="The message resource: status, reply, interrupt, error",
)
async def get_message(
    services: ServicesDep,
    user_id: UserIdHeader,
    message_id: str = Path(min_length=1, max_length=100),
) -> MessageOut:
    record = await services.store.get_message(message_id=message_id, user_id=user_id)
    return MessageOut.of(record)
