"""``POST /v1/chat``: record the message, run its turn, answer now or acknowledge."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from parley.api.auth import Authenticated, PrincipalDep
from parley.api.deps import JsonBody, ServicesDep, acting_user_id
from parley.api.event_stream import (
    STREAM_RESPONSE,
    event_stream_response,
    message_headers,
    wants_event_stream,
)
from parley.api.json_body import JsonRoute
from parley.api.schemas import ChatRequest, MessageOut, Problem
from parley.core.auth import Action, Principal, answerer_of
from parley.core.errors import InvalidInput
from parley.core.messages import submit_chat, wait_for_terminal
from parley.core.records import MessageRecord
from parley.settings import BusyPolicy, Settings
from parley.webhooks.destinations import DestinationPolicy, RefusedDestination

router = APIRouter(prefix="/v1", tags=["chat"], route_class=JsonRoute, dependencies=[Authenticated])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "Unknown session, or another user's."},
    409: {
        "model": Problem,
        "description": "The session is busy and the policy is reject, or it waits on an interrupt, or "
        "it belongs to another graph than the one named (graph-mismatch).",
    },
    413: {"model": Problem, "description": "Body too large."},
    415: {"model": Problem, "description": "Body is not JSON."},
    422: {"model": Problem, "description": "Invalid field; `errors` names it."},
}


def resolve_wait(*, requested: float | None, prefer: str | None, settings: Settings) -> float:
    """Seconds to wait: ``Prefer: respond-async`` means 0; else the body's, else the default.

    A ``wait`` over the maximum is refused even when the header overrides it: the body is invalid
    either way, as the schema says."""
    if requested is not None and requested > settings.max_wait:
        raise InvalidInput(f"must be at most {settings.max_wait} seconds", loc=["body", "wait"])
    if prefer is not None and "respond-async" in prefer.lower():
        return 0.0
    if requested is None:
        return settings.default_wait
    return requested


def callback_url_of(requested: str | None, *, principal: Principal, policy: DestinationPolicy) -> str | None:
    """The message's completion webhook: the body's ``callback_url``, else the key's default — refused
    (``422``, nothing stored) unless the policy allows it."""
    url = requested if requested is not None else principal.callback_url
    if url is None:
        return None
    try:
        policy.check_url(url)
    except RefusedDestination as exc:
        whose = "" if requested is not None else "the API key's default callback_url: "
        raise InvalidInput(f"{whose}{exc}", loc=["body", "callback_url"]) from exc
    return url


def message_response(record: MessageRecord, *, operator: bool, prefer_async: bool) -> Response:
    """200 with a terminal message; 202 with a ``Location`` to poll otherwise; as ``operator`` (or an
    end user) may see it.

    Serialised here, once: handed a model, FastAPI would dump it, validate it again against the
    ``response_model`` and dump it again, on the hottest path (the route still declares the model for
    the OpenAPI description)."""
    headers: dict[str, str] = {}
    status = 200
    if not record.status.is_terminal:
        status = 202
        headers["Location"] = f"/v1/messages/{record.message_id}"
    if prefer_async:
        headers["Preference-Applied"] = "respond-async"
    return Response(
        MessageOut.of(record, operator=operator).model_dump_json(),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


@router.post(
    "/chat",
    response_model=MessageOut,
    dependencies=[JsonBody],
    responses={
        200: STREAM_RESPONSE,
        202: {"model": MessageOut, "description": "Accepted; poll Location."},
        **_ERRORS,
    },
    summary="Send a user message; get the reply, or 202 and a message to poll, or its events streamed",
)
async def post_chat(
    request: Request,
    body: ChatRequest,
    services: ServicesDep,
    principal: PrincipalDep,
    prefer: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description="Repeat a POST with the same key (after a lost response) to get the same "
            "message back instead of sending it twice.",
        ),
    ] = None,
) -> Response:
    settings = services.settings
    user_id = acting_user_id(principal, body.user_id, action=Action.ACT, loc=("body", "user_id"))
    if len(body.message) > settings.max_message_chars:
        raise InvalidInput(
            f"must be at most {settings.max_message_chars} characters", loc=["body", "message"]
        )
    wait = resolve_wait(requested=body.wait, prefer=prefer, settings=settings)
    callback_url = callback_url_of(body.callback_url, principal=principal, policy=services.webhooks)
    if body.graph is not None:
        services.programs.named(body.graph, loc=["body", "graph"])  # 422 for a graph not served here
    record = await submit_chat(
        store=services.store,
        runner=services.runner,
        user_id=user_id,
        session_id=body.session_id,
        content=body.message,
        reject_if_busy=settings.busy_policy is BusyPolicy.REJECT,
        idempotency_key=idempotency_key,
        answer_interrupts=settings.chat_while_interrupted == "answer",
        max_unfinished=settings.max_queued_per_session,
        answerer=answerer_of(principal, user_id=user_id),
        callback_url=callback_url,
        graph=body.graph,
    )
    services.tracing.accepted(record.message_id)  # its turn's span continues this request's trace
    if wants_event_stream(request):
        return event_stream_response(
            request, services, message=record, operator=False, headers=message_headers(record)
        )
    record = await wait_for_terminal(store=services.store, bus=services.bus, message=record, timeout=wait)
    # The chat route knows no role: whoever sends a chat message reads as its end user.
    return message_response(record, operator=False, prefer_async=wait == 0 and prefer is not None)
