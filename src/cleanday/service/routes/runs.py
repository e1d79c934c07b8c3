"""Run outcomes: workers report every finished run here, idempotently by run ID."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from cleanday.service.deps import Operator, get_service
from cleanday.service.schemas import RunReportIn
from cleanday.service.serialize import to_jsonable

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
Service = Annotated[Any, Depends(get_service)]


def is_first_report(result: Any) -> bool:
    """Whether the ledger recorded the run now (True) or had it already (False)."""
    for name, first_when in (("created", True), ("recorded", True), ("duplicate", False)):
        value = result.get(name) if isinstance(result, dict) else getattr(result, name, None)
        if value is not None:
            return bool(value) is first_when
    return True


@router.post(
    "",
    dependencies=[Operator],
    status_code=status.HTTP_201_CREATED,
    summary="Report a finished run (201 first time, 200 when already reported)",
    responses={200: {"description": "already reported; nothing changed"}},
)
def report_run(body: RunReportIn, service: Service, response: Response) -> dict[str, Any]:
    from cleanday.ledger import RunReport

    result = service.report_run(RunReport.model_validate(body.model_dump()))
    if not is_first_report(result):
        response.status_code = status.HTTP_200_OK
    payload = to_jsonable(result)
    return payload if isinstance(payload, dict) else {"result": payload}
