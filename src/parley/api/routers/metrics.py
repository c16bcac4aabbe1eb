"""``GET /metrics``: this process's Prometheus metrics.

Who may read them is ``require_metrics_reader``: with ``PARLEY_AUTH=off`` anyone reaching the port may;
with keys, only an ``admin`` key (401 without one, 403 for another role). A deployment that wants
them off the API port entirely sets ``PARLEY_METRICS_ADDRESS`` and scrapes that instead.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from parley.api.auth import PrincipalDep
from parley.api.deps import ServicesDep
from parley.api.schemas import Problem
from parley.core.auth import Action, require
from parley.core.errors import NotFound
from parley.observability.metrics import CONTENT_TYPE

router = APIRouter(tags=["ops"])


async def require_metrics_reader(principal: PrincipalDep) -> None:
    """With auth off anyone who reaches the port may read them (as every route then); with keys, an
    ``admin`` key only: the metrics describe every user's activity."""
    if principal.authenticated:
        require(principal, Action.METRICS)


MetricsReader = Annotated[None, Depends(require_metrics_reader)]


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {}}},
        401: {"model": Problem, "description": "PARLEY_AUTH=keys and no valid key."},
        403: {"model": Problem, "description": "A key that is not admin."},
        404: {"model": Problem, "description": "Metrics are off (PARLEY_METRICS_ENABLED=false)."},
    },
    summary="Prometheus metrics of this process",
)
async def metrics(services: ServicesDep, _: MetricsReader) -> Response:
    if not services.metrics.enabled:
        raise NotFound("Metrics are off in this process (PARLEY_METRICS_ENABLED=false).")
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
