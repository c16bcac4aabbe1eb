"""``GET /v1/graphs``: the graphs this service hosts (``PARLEY_GRAPHS``), what each takes and may ask."""

from __future__ import annotations

from fastapi import APIRouter

from parley.api.auth import Authenticated
from parley.api.deps import ServicesDep
from parley.api.schemas import GraphOut, GraphsOut
from parley.core.programs import Program
from parley.core.statuses import InterruptKind

router = APIRouter(prefix="/v1/graphs", tags=["graphs"], dependencies=[Authenticated])


def _interrupts(program: Program, *, before: list[str], after: list[str]) -> list[str] | None:
    breakpoints = any(program.breakpoints(before, after))
    if program.interrupts is None:
        return [InterruptKind.BREAKPOINT.value] if breakpoints else None
    declared = list(program.interrupts)
    if breakpoints and InterruptKind.BREAKPOINT.value not in declared:
        declared.append(InterruptKind.BREAKPOINT.value)
    return declared


@router.get("", response_model=GraphsOut, summary="The graphs this service hosts, the default first")
async def list_graphs(services: ServicesDep) -> GraphsOut:
    settings = services.settings
    return GraphsOut(
        items=[
            GraphOut(
                name=program.name,
                default=index == 0,
                kind=program.kind,
                input=program.adapter.input_kind,
                interrupts=_interrupts(
                    program, before=settings.interrupt_before, after=settings.interrupt_after
                ),
                description=program.description,
            )
            for index, program in enumerate(services.programs)
        ]
    )
