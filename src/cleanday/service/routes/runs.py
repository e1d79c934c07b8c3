"""Run outcomes: workers report every finished run here, idempotently by run ID."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from cleanday.ledger import LedgerService, ReportResult, RunReport
from cleanday.service.deps import Operator, get_service

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
Service = Annotated[LedgerService, Depends(get_service)]


@router.post(
    "",
    dependencies=[Operator],
    status_code=status.HTTP_201_CREATED,
    summary="Report a finished run (201 first time, 200 when already reported)",
    responses={200: {"description": "already reported; nothing changed"}},
)
def report_run(body: RunReport, service: Service, response: Response) -> ReportResult:
    result = service.report_run(body)
    if not result.recorded:
        response.status_code = status.HTTP_200_OK
    return result
