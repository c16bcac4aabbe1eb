"""Typed dependencies the routers name: the services, the caller and the user it acts for, a JSON body
check."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from langgraph.checkpoint.base import BaseCheckpointSaver

from parley.api.auth import PrincipalDep
from parley.api.errors import UnsupportedMediaType
from parley.api.json_body import is_json_media_type
from parley.core.api_keys import KeyResolver
from parley.core.auth import Action, CallerRole, Principal, acting_user, claim_required, require
from parley.core.errors import Forbidden
from parley.core.events import EventBus
from parley.core.journal import EventJournal
from parley.core.ports import Runner, SessionTransfer, Store
from parley.core.programs import ProgramSet
from parley.observability.metrics import Metrics
from parley.observability.tracing import Tracing
from parley.settings import Settings
from parley.webhooks.destinations import DestinationPolicy


@dataclass(frozen=True)
class Services:
    """Everything a request may use, built by the app's lifespan and closed by it."""

    settings: Settings
    store: Store
    bus: EventBus
    journal: EventJournal
    runner: Runner
    checkpointer: BaseCheckpointSaver[Any]
    transfer: SessionTransfer
    metrics: Metrics
    tracing: Tracing
    keys: KeyResolver
    webhooks: DestinationPolicy
    """Where a callback_url may point (``PARLEY_WEBHOOK_ALLOWED_HOSTS``)."""
    programs: ProgramSet
    """The graphs served (``PARLEY_GRAPHS``), the default first."""


def get_services(request: Request) -> Services:
    """The services of the running app."""
    services: Services = request.app.state.services
    return services


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def require_json(request: Request) -> None:
    """Refuse a body that is not declared as JSON, before FastAPI tries to parse it."""
    content_type = request.headers.get("content-type", "")
    if not is_json_media_type(content_type):
        raise UnsupportedMediaType(
            f"Send the body as application/json (got {content_type or 'no Content-Type'}).",
            errors=[
                {
                    "loc": ["header", "content-type"],
                    "field": "header.content-type",
                    "msg": "must be application/json",
                    "type": "content_type",
                }
            ],
        )


class Role(StrEnum):
    """The ``X-Role`` header (auth off only): an end user (default) or an operator."""

    USER = "user"
    OPERATOR = "operator"


async def get_role(
    settings: Annotated[Settings, Depends(get_settings)],
    x_role: Annotated[
        Role | None,
        Header(
            alias="X-Role",
            description="operator, where PARLEY_OPERATOR_HEADER_ENABLED allows it (PARLEY_AUTH=off only; "
            "with keys the key's role decides and this header grants nothing).",
        ),
    ] = None,
) -> Role:
    """The role the header claims. Trusted only with auth off and when settings say so; otherwise it is
    refused rather than ignored, so that a misconfigured operator console fails loudly. With API keys
    it is ignored: the key's role is the caller's role, and a console sending the header for an
    operator's key keeps working. A value other than ``user`` or ``operator`` is a ``422`` (the enum,
    which the OpenAPI document shows)."""
    if x_role is None or settings.auth == "keys":
        return Role.USER
    if x_role is Role.OPERATOR and not settings.operator_header_enabled:
        raise Forbidden("The operator role is disabled (PARLEY_OPERATOR_HEADER_ENABLED is off).")
    return x_role


async def get_caller(principal: PrincipalDep, role: Annotated[Role, Depends(get_role)]) -> Principal:
    """The principal of a route that reads ``X-Role``: with auth off, a trusted ``X-Role: operator``
    makes the caller what an admin key is (any session, operator's view, the queue, import), as the
    header did before keys."""
    if not principal.authenticated and role is Role.OPERATOR:
        return replace(principal, role=CallerRole.ADMIN)
    return principal


CallerDep = Annotated[Principal, Depends(get_caller)]


def missing(loc: tuple[str, ...]) -> RequestValidationError:
    """The ``422`` FastAPI gives a missing required field, for a user id that is required only for some
    callers (so the schema cannot require it)."""
    return RequestValidationError([{"type": "missing", "loc": loc, "msg": "Field required", "input": None}])


def acting_user_id(principal: Principal, claimed: str | None, *, action: Action, loc: tuple[str, ...]) -> str:
    """The user a request acts for: ``RoleForbidden`` unless the principal's role may do ``action``;
    a ``422`` at ``loc`` if it must name the user and did not; ``RoleForbidden`` for a user key naming
    another user."""
    require(principal, action)
    if claimed is None and claim_required(principal, action):
        raise missing(loc)
    return acting_user(principal, claimed)


async def require_queue(caller: CallerDep) -> None:
    """Only operators and admins pass (with auth off: ``X-Role: operator``)."""
    require(caller, Action.QUEUE)


async def require_import(caller: CallerDep) -> None:
    """Only admins pass (with auth off: ``X-Role: operator``)."""
    require(caller, Action.IMPORT)


@dataclass(frozen=True)
class Viewer:
    """Who reads: a user (their own sessions only) or an operator (any session)."""

    user_id: str
    operator: bool


ServicesDep = Annotated[Services, Depends(get_services)]
RoleDep = Annotated[Role, Depends(get_role)]
OperatorOnly = Depends(require_queue)
AdminOnly = Depends(require_import)
USER_ID_HEADER = "X-User-Id"
UserIdHeader = Annotated[
    str | None,
    Header(
        alias=USER_ID_HEADER,
        min_length=1,
        max_length=200,
        pattern=r"^[^\s\x00-\x1f]+$",
        description="The user the caller acts for; sessions of other users are not found. Required with "
        "auth off and for service keys; a user key's own user if omitted.",
    ),
]
JsonBody = Depends(require_json)


async def get_viewer(caller: CallerDep, user_id: UserIdHeader = None) -> Viewer:
    """The caller of a read route: the user it reads as (``X-User-Id``, or a user key's own), and
    whether it reads any session (operators and admins)."""
    reader = acting_user_id(caller, user_id, action=Action.READ, loc=("header", USER_ID_HEADER))
    return Viewer(user_id=reader, operator=caller.sees_all)


ViewerDep = Annotated[Viewer, Depends(get_viewer)]
