"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from parley.api.deps import ServicesDep
from parley.api.schemas import Health, Problem
from parley.core.errors import ServiceUnavailable

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Problem}},
    summary="Storage reachable, migrations applied, runner accepting work",
)
async def readyz(services: ServicesDep) -> Health:
    await services.store.check_ready()
    if not services.runner.running:
        raise ServiceUnavailable("The runner is not accepting work (starting or stopping).")
    return Health(status="ready")
