"""CoalescedReports: run reports finishing together go to the ledger in batches; act_and_report
reports through them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest

from cleanday.errors import LedgerUnavailable
from cleanday.ledger_client import LedgerClient
from cleanday.runtime.activities import CoalescedReports, RuntimeActivities, RuntimeDeps
from cleanday.runtime.types import ActAndReport, ActRequest

_BERLIN = ZoneInfo("Europe/Berlin")


class _Ledger:
    """The batch endpoint, answering when told, remembering the run IDs it recorded."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.recorded: set[str] = set()
        self.gate = asyncio.Event()
        self.fail: Exception | None = None

    async def report_runs(self, reports: list[dict[str, Any]]) -> list[tuple[bool, dict[str, Any]]]:
        self.batches.append([r["run_id"] for r in reports])
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        out = []
        for r in reports:
            first = r["run_id"] not in self.recorded
            self.recorded.add(r["run_id"])
            out.append((first, {"run_id": r["run_id"], "recorded": first}))
        return out


def _coalesced(ledger: _Ledger, max_batch: int = 100) -> CoalescedReports:
    return CoalescedReports(cast(LedgerClient, ledger), max_batch=max_batch)


async def test_a_lone_report_goes_at_once_and_those_arriving_meanwhile_share_the_next() -> None:
    ledger = _Ledger()
    reports = _coalesced(ledger)
    first = asyncio.create_task(reports.report({"run_id": "r0"}))
    while not ledger.batches:  # the lone report is in flight on its own
        await asyncio.sleep(0)
    rest = [asyncio.create_task(reports.report({"run_id": f"r{i}"})) for i in range(1, 6)]
    await asyncio.sleep(0)
    ledger.gate.set()
    assert await first == (True, {"run_id": "r0", "recorded": True})
    answers = await asyncio.gather(*rest)
    assert [a[1]["run_id"] for a in answers] == ["r1", "r2", "r3", "r4", "r5"]
    assert ledger.batches == [["r0"], ["r1", "r2", "r3", "r4", "r5"]]


async def test_each_caller_gets_its_own_result_and_a_repeat_is_not_first() -> None:
    ledger = _Ledger()
    ledger.gate.set()
    reports = _coalesced(ledger, max_batch=2)
    answers = await asyncio.gather(*(reports.report({"run_id": r}) for r in ("a", "b", "a")))
    assert [first for first, _ in answers] == [True, True, False]
    assert all(len(b) <= 2 for b in ledger.batches)


async def test_a_failed_batch_reaches_every_caller_in_it_and_the_next_report_goes_again() -> None:
    ledger = _Ledger()
    ledger.fail = LedgerUnavailable("ledger down")
    reports = _coalesced(ledger)
    calls = [asyncio.create_task(reports.report({"run_id": f"r{i}"})) for i in range(3)]
    await asyncio.sleep(0)
    ledger.gate.set()
    for call in calls:
        with pytest.raises(LedgerUnavailable):
            await call
    ledger.fail = None
    assert (await reports.report({"run_id": "r0"}))[0] is True


async def test_a_cancelled_caller_does_not_cancel_the_batch_others_wait_for() -> None:
    ledger = _Ledger()
    reports = _coalesced(ledger)
    doomed = asyncio.create_task(reports.report({"run_id": "gone"}))
    kept = asyncio.create_task(reports.report({"run_id": "kept"}))
    await asyncio.sleep(0)
    doomed.cancel()
    ledger.gate.set()
    assert (await kept)[0] is True
    assert ledger.recorded == {"gone", "kept"}  # the cancelled caller's report still went


class _PermittingLedger(_Ledger):
    async def state(self, name: str) -> dict[str, Any]:
        return {"tier": "C", "status": "active"}

    async def request_permit(
        self, behavior: str, run_id: str, item_id: str | None = None
    ) -> dict[str, Any]:
        return {"granted": True}


class _Sink:
    def act(self, behavior: str, action: Any) -> str:
        return f"{behavior}/{action.target}"


def _activities(ledger: _Ledger, tmp_path: Path) -> RuntimeActivities:
    deps = RuntimeDeps(
        ledger=cast(LedgerClient, ledger),
        work_orders={},
        model_for=lambda *_: cast(Any, None),
        sink=_Sink(),
        data_dir=tmp_path,
    )
    return RuntimeActivities(deps)


async def test_act_and_report_reports_the_step_finish_the_workflow_gave_it(
    tmp_path: Path,
) -> None:
    # an hour ago, as when the run's report had to wait for the ledger: the time stays the step's
    ledger = _PermittingLedger()
    ledger.gate.set()
    step_finished = datetime.now(UTC) - timedelta(hours=1)
    act = ActRequest("notes", "run-1", None, [{"kind": "write", "target": "a.txt", "payload": {}}])
    report = {"run_id": "run-1", "finished_at": step_finished.isoformat(), "outcome": None}
    sent: list[dict[str, Any]] = []
    report_runs = ledger.report_runs

    async def capture(reports: list[dict[str, Any]]) -> list[tuple[bool, dict[str, Any]]]:
        sent.extend(reports)
        return await report_runs(reports)

    ledger.report_runs = capture  # type: ignore[method-assign]
    result = await _activities(ledger, tmp_path).act_and_report(ActAndReport(act, report))
    assert result.acted and result.reported and result.done == ["notes/a.txt"]
    [body] = sent
    assert body["outcome"] == "succeeded"
    assert datetime.fromisoformat(body["finished_at"]) == step_finished


async def test_a_batch_goes_in_the_order_its_steps_finished_and_each_caller_gets_its_own() -> None:
    ledger = _Ledger()
    reports = _coalesced(ledger)
    t0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    first = asyncio.create_task(reports.report({"run_id": "lone"}))
    while not ledger.batches:
        await asyncio.sleep(0)
    # arriving in another order than their steps finished (one at another offset)
    late = [("r2", t0 + timedelta(seconds=2)), ("r0", t0), ("r1", t0 + timedelta(seconds=1))]
    calls = {
        run_id: asyncio.create_task(
            reports.report({"run_id": run_id, "finished_at": at.astimezone(_BERLIN).isoformat()})
        )
        for run_id, at in late
    }
    await asyncio.sleep(0)
    ledger.gate.set()
    await first
    assert ledger.batches[1] == ["r0", "r1", "r2"]
    for run_id, call in calls.items():
        assert (await call)[1]["run_id"] == run_id
