"""Sunday reviews: this week's candidates, the operator's decisions, the Sunday close."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException

from cleanday.ledger import LedgerService
from cleanday.service.deps import Operator, get_service
from cleanday.service.schemas import DecisionIn
from cleanday.service.serialize import pane_row, to_jsonable

router = APIRouter(prefix="/api/v1/reviews", tags=["reviews"])
Service = Annotated[LedgerService, Depends(get_service)]


def _sunday(week: date) -> date:
    if week.weekday() != 6:
        raise HTTPException(
            422,
            f"week: {week.isoformat()} is a {week.strftime('%A')}; "
            "a review is named by its Sunday (YYYY-MM-DD)",
        )
    return week


@router.get("/{week}", summary="The review of the week ending on Sunday `week`")
def get_review(week: date, service: Service) -> dict[str, Any]:
    sunday = _sunday(week)
    rows = service.candidates(sunday)
    return {
        "week": sunday.isoformat(),
        "candidates": [to_jsonable(row) | pane_row(row) for row in rows],
    }


@router.post("/{week}/decisions", dependencies=[Operator], summary="Promote or hold a candidate")
def decide(week: date, body: DecisionIn, service: Service) -> dict[str, Any]:
    sunday = _sunday(week)
    service.decide(body.behavior, sunday, body.decision, body.by)
    return {"week": sunday.isoformat(), "behavior": body.behavior, "decision": body.decision.value}


@router.post("/{week}/close", dependencies=[Operator], summary="Close the Sunday review")
def close(week: date, service: Service) -> Any:
    return to_jsonable(service.close_sunday(_sunday(week)))
