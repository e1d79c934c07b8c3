"""Behaviors: register, list, read state and history, pause/resume/retire, override, batches."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from cleanday.ledger import LedgerService
from cleanday.service.deps import Operator, get_service
from cleanday.service.schemas import BatchApproveIn, BatchRejectIn, OverrideIn, RegisterIn
from cleanday.service.serialize import pane_row, to_jsonable
from cleanday.workorder import WorkOrder, parse_work_order

router = APIRouter(prefix="/api/v1/behaviors", tags=["behaviors"])
Service = Annotated[LedgerService, Depends(get_service)]


def work_order_summary(wo: WorkOrder) -> dict[str, Any]:
    return {
        "name": wo.name,
        "description": wo.description,
        "trigger": to_jsonable(wo.trigger),
        "reports": wo.reports,
        "key": {"ref": wo.key.ref, "cap_usd": wo.key.cap_usd, "cadence": wo.key.cadence},
        "preset": {"name": wo.preset.name, "model": wo.preset.model},
        "gates": [g.name for g in wo.gates],
        "transports": list(wo.transports.order),
        "idle_days": wo.idle_days.value,
        "entry": wo.entry,
    }


@router.get("", summary="Every behavior: the Pane of Glass rows")
def list_behaviors(service: Service) -> list[dict[str, Any]]:
    return [to_jsonable(row) | pane_row(row) for row in service.list_behaviors()]


@router.post(
    "",
    dependencies=[Operator],
    status_code=status.HTTP_201_CREATED,
    summary="Register a Work Order (201 new or new version, 200 unchanged)",
)
def register(body: RegisterIn, service: Service, response: Response) -> dict[str, Any]:
    source = body.source or "work order (API)"
    wo = parse_work_order(body.work_order, source)
    result = service.register_work_order(wo, source, text=body.work_order)
    if result.status == "unchanged":
        response.status_code = status.HTTP_200_OK
    payload: dict[str, Any] = to_jsonable(result)
    return payload


@router.get("/{name}", summary="A behavior's state and Work Order summary")
def get_behavior(name: str, service: Service) -> dict[str, Any]:
    state = service.state(name)
    wo = service.get_work_order(name)
    return {"name": name, "state": to_jsonable(state), "work_order": work_order_summary(wo)}


@router.get("/{name}/history", summary="A behavior's ledger entries, oldest first")
def history(name: str, service: Service) -> list[Any]:
    return list(to_jsonable(service.history(name)))


@router.get("/{name}/medians", summary="Trailing medians (cost, latency, output size)")
def medians(name: str, service: Service, days: int = 14) -> Any:
    return to_jsonable(service.trailing_medians(name, days=days))


@router.post("/{name}/pause", dependencies=[Operator], summary="Pause (operator)")
def pause(name: str, service: Service) -> dict[str, Any]:
    return {"name": name, "state": to_jsonable(service.pause(name))}


@router.post("/{name}/resume", dependencies=[Operator], summary="Resume a paused or quarantined")
def resume(name: str, service: Service) -> dict[str, Any]:
    return {"name": name, "state": to_jsonable(service.resume(name))}


@router.post("/{name}/retire", dependencies=[Operator], summary="Retire for good")
def retire(name: str, service: Service) -> dict[str, Any]:
    return {"name": name, "state": to_jsonable(service.retire(name))}


@router.post("/{name}/override", dependencies=[Operator], summary="Record an operator override")
def override(name: str, body: OverrideIn, service: Service) -> dict[str, Any]:
    row = service.override(name, body.reason, kind=body.kind, tier=body.tier)
    return {"name": name, "state": to_jsonable(row)}


@router.post("/{name}/batch/approve", dependencies=[Operator], summary="Approve A proposals")
def approve_batch(name: str, body: BatchApproveIn, service: Service) -> dict[str, Any]:
    result = service.approve(name, body.items)
    return {"name": name, "result": to_jsonable(result)}


@router.post("/{name}/batch/reject", dependencies=[Operator], summary="Reject A proposals")
def reject_batch(name: str, body: BatchRejectIn, service: Service) -> dict[str, Any]:
    result = service.reject(name, body.items, body.reason)
    return {"name": name, "result": to_jsonable(result)}


@router.post(
    "/{name}/staged/{item}/release", dependencies=[Operator], summary="Release a B staged item"
)
def release(name: str, item: str, service: Service) -> dict[str, Any]:
    result = service.release(name, item)
    return {"name": name, "item": item, "result": to_jsonable(result)}
