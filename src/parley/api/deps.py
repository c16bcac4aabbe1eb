"""Typed dependencies the routers name: the services, the caller's user id, a JSON body check."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from langgraph.checkpoint.base import BaseCheckpointSaver

from parley.api.errors import UnsupportedMediaType
from parley.api.json_body import is_json_media_type
from parley.core.errors import Forbidden
from parley.core.events import EventBus
from parley.core.journal import EventJournal
from parley.core.ports import Runner, SessionTransfer, Store
from parley.observability.metrics import Metrics
from parley.observability.tracing import Tracing
from parley.settings import Settings


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
    """Who is calling: an end user (default) or an operator."""

    USER = "user"
    OPERATOR = "operator"


async def get_role(
    settings: Annotated[Settings, Depends(get_settings)],
    x_role: Annotated[
        Role | None,
        Header(
            alias="X-Role",
            description="operator, where PARLEY_OPERATOR_HEADER_ENABLED allows it (until API keys).",
        ),
    ] = None,
) -> Role:
    """The caller's role. The header is trusted only when settings say so; otherwise it is refused
    rather than ignored, so that a misconfigured operator console fails loudly. A value other than
    ``user`` or ``operator`` is a ``422`` (the enum, which the OpenAPI document shows)."""
    if x_role is None:
        return Role.USER
    if x_role is Role.OPERATOR and not settings.operator_header_enabled:
        raise Forbidden("The operator role is disabled (PARLEY_OPERATOR_HEADER_ENABLED is off).")
    return x_role


async def require_operator(role: Annotated[Role, Depends(get_role)]) -> None:
    """Only operators pass."""
    if role is not Role.OPERATOR:
        raise Forbidden("This needs the operator role (X-Role: operator).")


@dataclass(frozen=True)
class Viewer:
    """Who reads: a user (their own sessions only) or an operator (any session)."""

    user_id: str
    operator: bool


ServicesDep = Annotated[Services, Depends(get_services)]
RoleDep = Annotated[Role, Depends(get_role)]
OperatorOnly = Depends(require_operator)
UserIdHeader = Annotated[
    str,
    Header(
        alias="X-User-Id",
        min_length=1,
        max_length=200,
        pattern=r"^[^\s\x00-\x1f]+$",
        description="The caller's user; sessions of other users are not found.",
    ),
]
JsonBody = Depends(require_json)


async def get_viewer(user_id: UserIdHeader, role: Annotated[Role, Depends(get_role)]) -> Viewer:
    """The caller of a read route: ``X-User-Id``, and whether ``X-Role`` makes them an operator."""
    return Viewer(user_id=user_id, operator=role is Role.OPERATOR)


ViewerDep = Annotated[Viewer, Depends(get_viewer)]
