"""Triggers as Temporal Schedules on a real dev server: days, time zones, pause, catch-up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import ScheduleOverlapPolicy, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from workflows.behavior_run import BehaviorRun

from cleanday.domain import Tier
from cleanday.runtime import schedules
from cleanday.workorder import WorkOrder
from tests.temporal.harness import ledger_app, running_stack, work_order

pytestmark = [pytest.mark.temporal, pytest.mark.asyncio(loop_scope="module")]


def _wo(name: str, **trigger: object) -> WorkOrder:
    return WorkOrder.model_validate(work_order(name, trigger=trigger))


async def test_cron_schedule_fires_on_weekdays_at_seven_in_the_work_orders_time_zone(
    dev_env: WorkflowEnvironment,
) -> None:
    wo = _wo("berlin_weekdays", type="cron", cron="0 7 * * 1-5", timezone="Europe/Berlin")
    assert await schedules.apply(dev_env.client, wo, "active", "q-days") == "created"
    handle = dev_env.client.get_schedule_handle(schedules.schedule_id(wo.name))
    desc = await handle.describe()
    upcoming = [t.astimezone(ZoneInfo("Europe/Berlin")) for t in desc.info.next_action_times]
    assert len(upcoming) >= 5
    assert all(t.weekday() < 5 and (t.hour, t.minute) == (7, 0) for t in upcoming)
    # 07:00 in Berlin is 05:00 or 06:00 UTC depending on the season, never 07:00 UTC
    assert all(t.astimezone(UTC).hour in (5, 6) for t in upcoming)
    assert desc.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert desc.schedule.policy.catchup_window == schedules.CATCHUP_WINDOW


async def test_pause_quarantine_and_retire_pause_or_delete_the_schedule_and_resume_unpauses(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    wo = _wo("lifecycle", type="interval", every_seconds=3600)
    handle = client.get_schedule_handle(schedules.schedule_id(wo.name))
    await schedules.apply(client, wo, "active", "q-life")
    assert not (await handle.describe()).schedule.state.paused
    for status in ("paused", "quarantined"):
        assert await schedules.apply(client, wo, status, "q-life") == "paused"
        assert (await handle.describe()).schedule.state.paused
        assert await schedules.apply(client, wo, "active", "q-life") == "active"
        assert not (await handle.describe()).schedule.state.paused
    assert await schedules.apply(client, wo, "retired", "q-life") == "deleted"
    assert schedules.schedule_for(_wo("hook", type="webhook", secret_ref="env:X"), "q") is None
    with pytest.raises(Exception, match="not found"):
        await handle.describe()


async def test_a_run_due_while_workers_were_down_runs_when_they_return(
    dev_env: WorkflowEnvironment, tmp_path: Path, provider_url: str
) -> None:
    client = dev_env.client
    app = ledger_app(tmp_path / "data")
    wo_raw = work_order("catch_up", trigger={"type": "interval", "every_seconds": 2})
    async with running_stack(client, app, tmp_path / "data", provider_url) as stack:
        await stack.register(wo_raw, tier=Tier.C)
        queue = stack.task_queue
    # the worker is gone; the schedule keeps firing into its task queue
    wo = WorkOrder.model_validate(wo_raw)
    await schedules.apply(client, wo, "active", queue)
    handle = client.get_schedule_handle(schedules.schedule_id(wo.name))
    try:
        for _ in range(100):
            if (await handle.describe()).info.recent_actions:
                break
            await asyncio.sleep(0.1)
        started = (await handle.describe()).info.recent_actions[0].action
        run = client.get_workflow_handle_for(BehaviorRun.run, started.workflow_id)
        # started by the server, waiting in the task queue for a worker
        assert (await run.describe()).status == WorkflowExecutionStatus.RUNNING
        await handle.pause()  # one missed run is enough to prove the point
        async with running_stack(
            client, app, tmp_path / "data", provider_url, task_queue=queue
        ) as stack:
            stack.work_orders[wo.name] = wo
            state = await asyncio.wait_for(run.result(), timeout=30)
            history = await stack.ledger.history(wo.name)
        assert state.outcome == "succeeded" and state.acted
        reported = [e["key"] for e in history if e["kind"] == "run_reported"]
        # the 2-second schedule may have fired once more before the pause; each counts once
        assert f"run:{started.workflow_id}" in reported
        assert len(reported) == len(set(reported))
        scheduled_at = (await run.describe()).start_time
        assert scheduled_at is not None and scheduled_at < datetime.now(UTC)
    finally:
        await handle.delete()
