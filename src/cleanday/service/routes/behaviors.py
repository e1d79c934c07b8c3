"""Behaviors: register, list, read state and history, pause/resume/retire, override, batches."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from cleanday.ledger import (
    BatchResult,
    BehaviorRow,
    LedgerEntryRow,
    LedgerService,
    Medians,
    PendingItemRow,
    RegistrationResult,
)
from cleanday.registration import parse_work_order
from cleanday.service.deps import Operator, get_service
from cleanday.service.schemas import (
    BatchApproveIn,
    BatchRejectIn,
    BehaviorDetail,
    OverrideIn,
    RegisterIn,
    RunNowIn,
    StateOut,
    TierChangeOut,
    WorkOrderSummary,
    state_out,
)
from cleanday.service.serialize import to_jsonable
from cleanday.workorder import WorkOrder

BEHAVIORS_PATH = "/api/v1/behaviors"
router = APIRouter(prefix=BEHAVIORS_PATH, tags=["behaviors"])
Service = Annotated[LedgerService, Depends(get_service)]


def work_order_summary(wo: WorkOrder) -> WorkOrderSummary:
    return WorkOrderSummary(
        name=wo.name,
        description=wo.description,
        trigger=to_jsonable(wo.trigger),
        reports=wo.reports,
        key_ref=wo.key.ref,
        cap_usd=wo.key.cap_usd,
        cadence=wo.key.cadence,
        preset=wo.preset.name,
        model=wo.preset.model,
        gates=[g.name for g in wo.gates],
        transports=list(wo.transports.order),
        idle_days=wo.idle_days.value,
        entry=wo.entry,
    )


@router.get("", summary="Every behavior but the retired: the Pane of Glass rows")
def list_behaviors(
    service: Service,
    all_: Annotated[bool, Query(alias="all", description="include retired behaviors")] = False,
) -> list[BehaviorRow]:
    return service.list_behaviors(include_retired=all_)


@router.post(
    "",
    dependencies=[Operator],
    status_code=status.HTTP_201_CREATED,
    summary="Register a Work Order (201 new, new version or revived; 200 unchanged)",
    responses={
        200: {"description": "unchanged; nothing written"},
        409: {"description": "key bound to another behavior, or a retired name without revive"},
    },
)
def register(body: RegisterIn, service: Service, response: Response) -> RegistrationResult:
    source = body.source or "work order (API)"
    wo = parse_work_order(body.work_order, source)
    result = service.register_work_order(wo, source, text=body.work_order, revive=body.revive)
    if result.status == "unchanged":
        response.status_code = status.HTTP_200_OK
    return result


@router.get("/{name}", summary="A behavior's state, tier changes and Work Order summary")
def get_behavior(name: str, service: Service) -> BehaviorDetail:
    state = service.state(name)
    return BehaviorDetail(
        name=name,
        state=state_out(state),
        tier_changes=[
            TierChangeOut.model_validate(c, from_attributes=True) for c in state.tier_changes
        ],
        work_order=work_order_summary(service.get_work_order(name)),
    )


@router.get(
    "/{name}/state",
    summary="A behavior's tier and status now, without its history: what a run reads as it starts",
)
def get_state(name: str, service: Service) -> StateOut:
    return state_out(service.state(name))


@router.get(
    "/{name}/work-order",
    summary="The Work Order version the ledger holds, whole: what a worker runs",
)
def get_work_order(name: str, service: Service) -> dict[str, Any]:
    version, work_order = service.current_work_order(name)
    return {"behavior": name, "version": version, "work_order": work_order}


@router.get("/{name}/history", summary="A behavior's ledger entries, oldest first")
def history(name: str, service: Service) -> list[LedgerEntryRow]:
    return service.history(name)


@router.get("/{name}/medians", summary="Trailing medians (cost, latency, output size)")
def medians(name: str, service: Service, days: int = 14) -> Medians:
    return service.trailing_medians(name, days=days)


@router.post(
    "/{name}/runs",
    dependencies=[Operator],
    status_code=status.HTTP_201_CREATED,
    summary="Start a run now (operator): its run ID and its link in the Temporal UI",
    responses={409: {"description": "not active"}, 503: {"description": "Temporal down"}},
)
async def run_now(name: str, body: RunNowIn, request: Request, service: Service) -> dict[str, str]:
    from cleanday.runtime.starter import run_now as start

    starter = getattr(request.app.state, "run_starter", None)
    if starter is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "this service has no Temporal side to start runs with: start it with `cleanday up` "
            "or `cleanday serve`",
        )
    started = await start(starter, service, request.app.state.settings, name, body.input)
    return started.to_json()


@router.post("/{name}/pause", dependencies=[Operator], summary="Pause (operator)")
def pause(name: str, service: Service) -> BehaviorRow:
    return service.pause(name)


@router.post("/{name}/resume", dependencies=[Operator], summary="Resume paused or quarantined")
def resume(name: str, service: Service) -> BehaviorRow:
    return service.resume(name)


@router.post(
    "/{name}/retire",
    dependencies=[Operator],
    summary="Retire: no more run reports or permits, its key released (revive by registering)",
)
def retire(name: str, service: Service) -> BehaviorRow:
    return service.retire(name)


@router.post("/{name}/override", dependencies=[Operator], summary="Record an operator override")
def override(name: str, body: OverrideIn, service: Service) -> BehaviorRow:
    return service.override(name, body.reason, kind=body.kind, tier=body.tier)


@router.get("/{name}/items", summary="A behavior's A proposals and B staged items")
def list_items(
    name: str,
    service: Service,
    only: Annotated[
        Literal["pending", "approved", "rejected", "released", "expired", "acted"] | None,
        Query(
            alias="status",
            description="only items of this status; `pending` is the batch awaiting sign-off",
        ),
    ] = None,
) -> list[PendingItemRow]:
    return service.items(name, status=only)


@router.get("/{name}/items/{item}", summary="One proposal or staged item and its sign-off")
def get_item(name: str, item: str, service: Service) -> PendingItemRow:
    return service.item(name, item)


@router.post("/{name}/batch/approve", dependencies=[Operator], summary="Approve A proposals")
def approve_batch(name: str, body: BatchApproveIn, service: Service) -> BatchResult:
    return service.approve(name, body.items)


@router.post("/{name}/batch/reject", dependencies=[Operator], summary="Reject A proposals")
def reject_batch(name: str, body: BatchRejectIn, service: Service) -> BatchResult:
    return service.reject(name, body.items, body.reason)


@router.post(
    "/{name}/staged/{item}/release", dependencies=[Operator], summary="Release a B staged item"
)
def release(name: str, item: str, service: Service) -> BatchResult:
    return service.release(name, item)
