"""``GET /metrics``: this process's Prometheus metrics.

Who may read them is ``require_metrics_reader``, one module-level dependency: with ``PARLEY_AUTH=off``
(no principal on the request) anyone reaching the port may; once the auth middleware puts
``request.state.principal`` on requests, only a principal with role ``admin`` may. A deployment that wants
them off the API port entirely sets ``PARLEY_METRICS_ADDRESS`` and scrapes that instead.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from parley.api.deps import ServicesDep
from parley.api.schemas import Problem
from parley.core.errors import Forbidden, NotFound
from parley.observability.metrics import CONTENT_TYPE

router = APIRouter(tags=["ops"])

METRICS_ROLE = "admin"
_NO_PRINCIPAL = object()


async def require_metrics_reader(request: Request) -> None:
    """Pass when the request has no principal (auth off); else only an ``admin`` principal passes."""
    principal = getattr(request.state, "principal", _NO_PRINCIPAL)
    if principal is _NO_PRINCIPAL:
        return
    if getattr(principal, "role", None) != METRICS_ROLE:
        raise Forbidden("The metrics need an admin key.")


MetricsReader = Annotated[None, Depends(require_metrics_reader)]


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {}}},
        403: {"model": Problem},
        404: {"model": Problem, "description": "Metrics are off (PARLEY_METRICS_ENABLED=false)."},
    },
    summary="Prometheus metrics of this process",
)
async def metrics(services: ServicesDep, _: MetricsReader) -> Response:
    if not services.metrics.enabled:
        raise NotFound("Metrics are off in this process (PARLEY_METRICS_ENABLED=false).")
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
