"""``GET /v1/interrupts``: the operator queue of pending interrupts across sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from parley.api.deps import OperatorOnly, ServicesDep
from parley.api.schemas import ID_PATTERN, InterruptOut, InterruptsOut, Problem
from parley.core.statuses import InterruptKind

router = APIRouter(prefix="/v1/interrupts", tags=["interrupts"])

MAX_AGE_SECONDS = 10 * 365.25 * 24 * 3600
"""Ten years: older than any interrupt, and far from the edge of ``datetime`` arithmetic, where a larger
age (``1e11``) made ``now - age`` overflow into a 500."""


@router.get(
    "",
    response_model=InterruptsOut,
    dependencies=[OperatorOnly],
    responses={403: {"model": Problem, "description": "Not an operator."}, 422: {"model": Problem}},
    summary="Pending interrupts across sessions, oldest first (operators)",
)
async def list_interrupts(
    services: ServicesDep,
    kind: Annotated[InterruptKind | None, Query(description="confirm, review, breakpoint or input")] = None,
    min_age_seconds: Annotated[
        float | None,
        Query(
            ge=0,
            le=MAX_AGE_SECONDS,
            allow_inf_nan=False,
            description="Only those waiting at least this many seconds.",
        ),
    ] = None,
    session_id: Annotated[str | None, Query(min_length=1, max_length=100, pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> InterruptsOut:
    now = datetime.now(UTC)
    before = None if min_age_seconds is None else now - timedelta(seconds=min_age_seconds)
    records = await services.store.list_interrupts(
        kind=None if kind is None else kind.value, created_before=before, session_id=session_id, limit=limit
    )
    return InterruptsOut(items=[InterruptOut.of(r, now=now) for r in records])
