"""``GET /v1/interrupts``: the operator queue of pending interrupts across sessions; ``GET
/v1/interrupts/{id}``: one interrupt, pending or answered, with who answered it and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query

from parley.api.auth import Authenticated
from parley.api.deps import OperatorOnly, ServicesDep, ViewerDep
from parley.api.schemas import ID_PATTERN, InterruptDetail, InterruptOut, InterruptsOut, Problem
from parley.core.statuses import InterruptKind

router = APIRouter(prefix="/v1/interrupts", tags=["interrupts"], dependencies=[Authenticated])

MAX_AGE_SECONDS = 10 * 365.25 * 24 * 3600
"""Ten years: older than any interrupt, and far from the edge of ``datetime`` arithmetic, where a larger
age (``1e11``) made ``now - age`` overflow into a 500."""


@router.get(
    "",
    response_model=InterruptsOut,
    dependencies=[OperatorOnly],
    responses={
        403: {"model": Problem, "description": "Not an operator (or admin) key; with auth off, no X-Role."},
        422: {"model": Problem},
    },
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
    graph: Annotated[
        str | None, Query(min_length=1, max_length=40, description="Only those of this graph's sessions.")
    ] = None,
) -> InterruptsOut:
    now = datetime.now(UTC)
    before = None if min_age_seconds is None else now - timedelta(seconds=min_age_seconds)
    if graph is not None:
        services.programs.named(graph, loc=["query", "graph"])
    records = await services.store.list_interrupts(
        kind=None if kind is None else kind.value,
        created_before=before,
        session_id=session_id,
        limit=limit,
        graph=graph,
    )
    return InterruptsOut(items=[InterruptOut.of(r, now=now) for r in records])


@router.get(
    "/{interrupt_id}",
    response_model=InterruptDetail,
    responses={404: {"model": Problem, "description": "Unknown, or of another user's session."}},
    summary="One interrupt, pending or answered, with who answered it and when",
)
async def get_interrupt(
    services: ServicesDep,
    viewer: ViewerDep,
    interrupt_id: Annotated[str, Path(min_length=1, max_length=200, pattern=ID_PATTERN)],
) -> InterruptDetail:
    view = await services.store.get_interrupt(
        interrupt_id=interrupt_id, user_id=viewer.user_id, operator=viewer.operator
    )
    return InterruptDetail.of(view, operator=viewer.operator)
