"""A run belongs to the day its step finished, however late its report reaches the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
import yaml

from cleanday.config import Settings
from cleanday.db import make_engine
from cleanday.domain import Policy, Status, Tier
from cleanday.ledger import LedgerService
from cleanday.ledger_client import LedgerClient, LedgerUnavailable
from cleanday.runtime.activities import RuntimeActivities, RuntimeDeps
from cleanday.runtime.types import (
    SUCCEEDED,
    ActAndReport,
    ActRequest,
    Binding,
    RunState,
    StepOutput,
    build_report,
)
from cleanday.service.app import create_app
from cleanday.sinks import FileSink
from cleanday.workorder import WorkOrder
from tests.temporal.harness import work_order

TOKEN = "test-token-late-7d"
BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2026, 3, 10)  # a Tuesday: no Sunday review in the way


def _local(d: date, hh: int, mm: int) -> datetime:
    return datetime.combine(d, time(hh, mm), BERLIN)


@dataclass
class _Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class _Ledger:
    client: LedgerClient
    clock: _Clock


@pytest_asyncio.fixture
async def ledger(database_url: str, tmp_path: Path) -> AsyncIterator[_Ledger]:
    """The ledger service in Berlin time on its own clock, registered with a C behavior the
    day before DAY (the forced tier is an override: that day is not clean)."""
    clock = _Clock(_local(DAY - timedelta(days=1), 9, 0))
    service = LedgerService(make_engine(database_url), Policy(timezone="Europe/Berlin"), clock)
    settings = Settings(CLEANDAY_TOKEN=TOKEN, CLEANDAY_DATA_DIR=tmp_path)
    app = create_app(settings, service, scheduler=False)
    async with LedgerClient(
        "http://ledger", TOKEN, transport=httpx.ASGITransport(app=app)
    ) as client:
        await client.register(yaml.safe_dump(work_order("notes")))
        await client.override("notes", "starts at C", kind="forced_tier", tier="C")
        yield _Ledger(client, clock)


def _report_at(finished: datetime) -> dict[str, Any]:
    """The report the workflow builds for a C run whose step finished at `finished`."""
    binding = Binding("notes", Tier.C, Status.ACTIVE, 1, "env:TEST_KEY_NOTES", 24, 120)
    step = StepOutput(output="a note", summary="1 note written.")
    state = RunState(behavior="notes", tier=Tier.C, outcome=SUCCEEDED)
    started = finished - timedelta(seconds=20)
    return build_report(binding, "notes-late", started, finished, step, state)


async def test_a_report_reaching_the_ledger_after_midnight_counts_toward_the_day_its_step_finished(
    ledger: _Ledger, tmp_path: Path
) -> None:
    client, clock = ledger.client, ledger.clock
    deps = RuntimeDeps(
        ledger=client,
        work_orders={"notes": WorkOrder.model_validate(work_order("notes"))},
        model_for=lambda *_: None,  # type: ignore[arg-type,return-value]
        sink=FileSink(tmp_path),
        data_dir=tmp_path,
    )
    activities = RuntimeActivities(deps)
    finished = _local(DAY, 23, 59)
    actions = [{"kind": "write", "target": "n.txt", "payload": {}}]
    request = ActAndReport(ActRequest("notes", "notes-late", None, actions), _report_at(finished))

    # the ledger is down at 23:59: the act's permit cannot be asked, the activity fails (and
    # Temporal retries it)
    clock.now = _local(DAY, 23, 59) + timedelta(seconds=30)
    permit = client.request_permit

    async def down(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise LedgerUnavailable("the ledger is down")

    client.request_permit = down  # type: ignore[method-assign]
    with pytest.raises(LedgerUnavailable):
        await activities.act_and_report(request)

    # back after midnight; its clock closed DAY (no run in it yet) before the retry comes in
    client.request_permit = permit  # type: ignore[method-assign]
    clock.now = _local(DAY + timedelta(days=1), 0, 1)
    await client.close_day(DAY.isoformat())
    clock.now = _local(DAY + timedelta(days=1), 0, 7)
    result = await activities.act_and_report(request)
    assert result.acted and result.reported

    history = await client.history("notes")
    [run] = [e for e in history if e["kind"] == "run_reported"]
    assert datetime.fromisoformat(run["at"]) == finished
    # DAY had the run and nothing against it: one clean day, though DAY was closed without it
    state = (await client.behavior("notes"))["state"]
    assert state["tier"] == "C" and state["clean_days"] == 1
