"""Run outcomes: workers report every finished run here, idempotently by run ID, one at a time
(concurrent reports are group-committed) or in batches."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response, status
from pydantic import BaseModel, ValidationError

from cleanday.ledger import LedgerService, ReportResult, RunReport
from cleanday.service.deps import Operator, get_service
from cleanday.service.fastpath import Answer, FastPath

RUNS_PATH = "/api/v1/runs"
router = APIRouter(prefix=RUNS_PATH, tags=["runs"])
Service = Annotated[LedgerService, Depends(get_service)]

MAX_BATCH = 500  # reports per POST /runs/batch, and per group commit
GROUP_WINDOW_S = 0.002  # how long a lone report waits for company before it is written


@dataclass
class _GroupCommit:
    """Coalesces single reports that arrive together into one `report_runs` transaction.

    One writer task per event loop takes whatever is queued (waiting `window` seconds for more
    when it finds few), writes them in one transaction on a worker thread, and answers each
    request with its own result. While a group is being written the next one gathers, so the
    group size follows the load. If the group's transaction fails, each report is written on
    its own, so only a bad report fails its request.
    """

    service: LedgerService
    loop: asyncio.AbstractEventLoop
    window: float = GROUP_WINDOW_S
    queue: asyncio.Queue[tuple[RunReport, asyncio.Future[ReportResult]]] = field(
        default_factory=asyncio.Queue
    )
    task: asyncio.Task[None] | None = None

    async def submit(self, report: RunReport) -> ReportResult:
        future: asyncio.Future[ReportResult] = self.loop.create_future()
        await self.queue.put((report, future))
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._writer())
        return await future

    def _drain(self, group: list[tuple[RunReport, asyncio.Future[ReportResult]]]) -> None:
        while len(group) < MAX_BATCH and not self.queue.empty():
            group.append(self.queue.get_nowait())

    async def _writer(self) -> None:
        while True:
            group = [await self.queue.get()]
            self._drain(group)
            if len(group) < 8 and self.window > 0:
                await asyncio.sleep(self.window)
                self._drain(group)
            await self._write(group)

    async def _write(self, group: list[tuple[RunReport, asyncio.Future[ReportResult]]]) -> None:
        try:
            results = await asyncio.to_thread(self.service.report_runs, [r for r, _ in group])
        except Exception as exc:
            if len(group) == 1:  # a lone report: its own error is the answer
                _settle(group[0][1], exc=exc)
                return
            # nothing of the group was written: write each on its own, so only a bad one fails
            for report, future in group:
                try:
                    (one,) = await asyncio.to_thread(self.service.report_runs, [report])
                except Exception as one_exc:
                    _settle(future, exc=one_exc)
                else:
                    _settle(future, one)
            return
        for (_, future), result in zip(group, results, strict=True):
            _settle(future, result)


def _settle(
    future: asyncio.Future[ReportResult],
    result: ReportResult | None = None,
    exc: BaseException | None = None,
) -> None:
    if future.done():  # the request was cancelled (client gone); the write stands
        return
    if exc is not None:
        future.set_exception(exc)
    elif result is not None:
        future.set_result(result)


def _committer(state: Any, service: LedgerService) -> _GroupCommit:
    """The app's group commit for the running event loop (tests may start several loops)."""
    loop = asyncio.get_running_loop()
    gc: _GroupCommit | None = getattr(state, "run_group_commit", None)
    if gc is None or gc.loop is not loop or gc.service is not service:
        gc = _GroupCommit(service, loop)
        state.run_group_commit = gc
    return gc


class IngestFastPath(FastPath):
    """Answers the hottest request, a well-formed `POST /api/v1/runs` with the right token,
    without FastAPI's machinery (which costs more than the ledger's share of a group commit);
    the route and this path share the group commit."""

    method, writes = "POST", True

    def matches(self, path: str) -> bool:
        return path == RUNS_PATH

    async def answer(self, state: Any, match: Any, body: bytes) -> Answer | None:
        try:
            report = RunReport.model_validate_json(body)
        except ValidationError:
            return None  # the route's 422 names the field
        result = await _committer(state, state.service).submit(report)
        code = status.HTTP_201_CREATED if result.recorded else status.HTTP_200_OK
        return code, result.model_dump_json().encode()


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
    result = await _committer(request.app.state, service).submit(body)
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
