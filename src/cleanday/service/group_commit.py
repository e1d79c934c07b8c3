"""Group commit: single run reports that arrive together are written in one `report_runs`
transaction, each request answered with its own result. Shared by `POST /api/v1/runs` and its
fast path."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from cleanday.ledger import LedgerService, ReportResult, RunReport

MAX_BATCH = 500  # reports per POST /runs/batch, and per group commit
GROUP_WINDOW_S = 0.002  # how long a lone report waits for company before it is written


@dataclass
class GroupCommit:
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


def committer(state: Any, service: LedgerService) -> GroupCommit:
    """The app's group commit for the running event loop (tests may start several loops)."""
    loop = asyncio.get_running_loop()
    gc: GroupCommit | None = getattr(state, "run_group_commit", None)
    if gc is None or gc.loop is not loop or gc.service is not service:
        gc = GroupCommit(service, loop)
        state.run_group_commit = gc
    return gc
