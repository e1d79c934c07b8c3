"""Day close: folds a calendar day in the ledger's time zone; safe to run twice."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends

from cleanday.ledger import DayCloseResult, LedgerService
from cleanday.service.deps import Operator, get_service

router = APIRouter(prefix="/api/v1/days", tags=["days"])
Service = Annotated[LedgerService, Depends(get_service)]


@router.post("/{day}/close", dependencies=[Operator], summary="Close a day (idempotent)")
def close_day(day: date, service: Service) -> DayCloseResult:
    return service.close_day(day)
