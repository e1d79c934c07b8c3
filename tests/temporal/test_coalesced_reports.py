"""CoalescedReports: run reports finishing together go to the ledger in batches."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from cleanday.ledger_client import LedgerClient, LedgerUnavailable
from cleanday.runtime.activities import CoalescedReports


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
