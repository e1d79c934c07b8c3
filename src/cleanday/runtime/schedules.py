"""Triggers as Temporal Schedules: one per cron/interval behavior, paused with its behavior."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode
from workflows.behavior_run import BehaviorRun

from cleanday.domain import Status
from cleanday.ledger_client import LedgerClient
from cleanday.runtime import search
from cleanday.runtime.types import RunRequest
from cleanday.workorder import CronTrigger, IntervalTrigger, WorkOrder

log = logging.getLogger("cleanday.schedules")

# A run missed while the workers (or the server) were down still runs when they return,
# as long as it was due within this window; older misses are dropped rather than piled up.
CATCHUP_WINDOW = timedelta(days=1)


def schedule_id(behavior: str) -> str:
    return f"cleanday-{behavior}"


def schedule_for(
    wo: WorkOrder, task_queue: str, *, paused: bool = False, search_attributes: bool = False
) -> Schedule | None:
    """The Schedule for a Work Order's trigger; None for a webhook-triggered behavior."""
    trigger = wo.trigger
    if isinstance(trigger, CronTrigger):
        spec = ScheduleSpec(cron_expressions=[trigger.cron], time_zone_name=trigger.timezone)
    elif isinstance(trigger, IntervalTrigger):
        spec = ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=trigger.every_seconds))]
        )
    else:
        return None
    return Schedule(
        action=ScheduleActionStartWorkflow(
            BehaviorRun.run,
            RunRequest(behavior=wo.name, trigger="schedule", search_attributes=search_attributes),
            # Temporal appends the scheduled time, so each firing has its own workflow ID,
            # which is also the run ID the ledger counts once
            id=f"{wo.name}-scheduled",
            task_queue=task_queue,
        ),
        spec=spec,
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(paused=paused, note=f"cleanday behavior {wo.name}"),
    )


async def _existing(client: Client, behavior: str) -> ScheduleHandle | None:
    handle = client.get_schedule_handle(schedule_id(behavior))
    try:
        await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return handle


async def apply(client: Client, wo: WorkOrder, status: Status, task_queue: str) -> str:
    """Make the behavior's schedule match its Work Order and ledger status; says what it did.

    active → running; paused/quarantined → paused; retired → deleted.
    """
    name, status = wo.name, Status(status)
    handle = await _existing(client, name)
    if status is Status.RETIRED:
        if handle is not None:
            await handle.delete()
            return "deleted"
        return "absent"
    paused = status is not Status.ACTIVE
    tagged = await search.ready(client)
    schedule = schedule_for(wo, task_queue, paused=paused, search_attributes=tagged)
    if schedule is None:
        if handle is not None:  # the trigger became a webhook
            await handle.delete()
            return "deleted"
        return "webhook"
    if handle is None:
        try:
            await client.create_schedule(schedule_id(name), schedule)
            return "created paused" if paused else "created"
        except ScheduleAlreadyRunningError:
            handle = client.get_schedule_handle(schedule_id(name))

    def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    await handle.update(update)
    return "paused" if paused else "active"


async def set_paused(client: Client, behavior: str, paused: bool, note: str = "") -> None:
    """Pause or unpause a behavior's schedule right away (pause, quarantine, resume)."""
    handle = await _existing(client, behavior)
    if handle is None:
        return
    if paused:
        await handle.pause(note=note or "paused by cleanday")
    else:
        await handle.unpause(note=note or "resumed by cleanday")


async def sync_schedules(
    client: Client, ledger: LedgerClient, work_orders: Iterable[WorkOrder], task_queue: str
) -> dict[str, str]:
    """Bring every behavior's schedule in line with the ledger's status for it."""
    done: dict[str, str] = {}
    for wo in work_orders:
        body = await ledger.behavior(wo.name)
        status = Status(body.get("state", body)["status"])
        done[wo.name] = await apply(client, wo, status, task_queue)
    log.info("schedules: %s", done)
    return done
