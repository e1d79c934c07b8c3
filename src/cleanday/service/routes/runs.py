"""Run outcomes: workers report every finished run here, idempotently by run ID, one at a time
(concurrent reports are group-committed) or in batches."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response, status
from pydantic import BaseModel

from cleanday.ledger import LedgerService, ReportResult, RunReport
from cleanday.service.deps import Operator, get_service
from cleanday.service.group_commit import MAX_BATCH, committer

RUNS_PATH = "/api/v1/runs"
router = APIRouter(prefix=RUNS_PATH, tags=["runs"])
Service = Annotated[LedgerService, Depends(get_service)]


@router.post(
    "",
    dependencies=[Operator],
    status_code=status.HTTP_201_CREATED,
    response_model=ReportResult,
    summary="Report a finished run (201 first time, 200 when already reported)",
    description=(
        "Reports arriving together are written in one transaction (group commit); each gets "
        "its own answer, and a bad report fails only its own request."
    ),
    responses={200: {"description": "already reported; nothing changed", "model": ReportResult}},
)
async def report_run(body: RunReport, service: Service, request: Request) -> Response:
    result = await committer(request.app.state, service).submit(body)
    # serialized here, once: FastAPI would validate the model again before encoding it
    return _json(result, status.HTTP_201_CREATED if result.recorded else status.HTTP_200_OK)


def _json(model: BaseModel, code: int) -> Response:
    return Response(model.model_dump_json(), status_code=code, media_type="application/json")


class RunBatchResult(BaseModel):
    recorded: int  # reports recorded now
    unchanged: int  # reports whose run_id was already recorded (in the ledger or the batch)
    results: list[ReportResult]  # one per report, in the order sent


@router.post(
    "/batch",
    dependencies=[Operator],
    response_model=RunBatchResult,
    summary=f"Report up to {MAX_BATCH} finished runs in one transaction",
    description=(
        "A list of run reports, each as for `POST /api/v1/runs`, written in one transaction: "
        "all or nothing. Idempotent by run ID (a repeat, in the ledger or earlier in the list, "
        "is `recorded: false`). A bad item is a 422 naming its index and field; an unknown "
        "behavior (404) or a run ID reported for another behavior (409) names the index; in "
        "each case nothing is written."
    ),
)
async def report_runs(
    service: Service,
    body: Annotated[list[RunReport], Body(min_length=1, max_length=MAX_BATCH)],
) -> Response:
    results = await asyncio.to_thread(service.report_runs, body)
    recorded = sum(1 for r in results if r.recorded)
    out = RunBatchResult(recorded=recorded, unchanged=len(results) - recorded, results=results)
    return _json(out, status.HTTP_200_OK)
