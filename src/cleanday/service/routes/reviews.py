"""Sunday reviews: this week's candidates, the operator's decisions, the Sunday close."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from cleanday.ledger import LedgerService, SundayCloseResult
from cleanday.service.deps import Operator, get_service
from cleanday.service.schemas import DecisionIn, DecisionOut, ReviewOut

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
def get_review(week: date, service: Service) -> ReviewOut:
    sunday = _sunday(week)
    return ReviewOut(
        week=sunday, candidates=service.candidates(sunday), decisions=service.decisions(sunday)
    )


@router.post("/{week}/decisions", dependencies=[Operator], summary="Promote or hold a candidate")
def decide(week: date, body: DecisionIn, service: Service) -> DecisionOut:
    sunday = _sunday(week)
    row = service.decide(body.behavior, sunday, body.decision, body.by, body.door)
    return DecisionOut(
        week=sunday,
        behavior=row.behavior,
        decision=row.decision,
        by=row.by,
        door=body.door,
        decided_at=row.decided_at,
        superseded_by=row.superseded_by,
    )


@router.post("/{week}/close", dependencies=[Operator], summary="Close the Sunday review")
def close(week: date, service: Service) -> SundayCloseResult:
    return service.close_sunday(_sunday(week))
