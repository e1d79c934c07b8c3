"""What a process with a Temporal client delivers from the outbox: the wake-ups of runs waiting
for a sign-off, (with OPENROUTER_MANAGEMENT_KEY) preset publications to OpenRouter, and (with
NOTION_TOKEN) the Notion rows (`cleanday.notion.sender`).

A sign-off from any door (the API, the CLI, a form, a Notion decision) raises `ItemsSignedOff`
in the ledger; its reaction queues one `wake_run` row per run (`cleanday.reactions.temporal`),
and the delivery attached here sends it as the run's signal right after the commit, before the
sign-off is answered. The signal only wakes: the run asks the ledger for its permit before
acting, and a run that is never told finds its sign-off at its own next check of the ledger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from workflows.behavior_run import BehaviorRun

from cleanday import slack_sender
from cleanday.config import Settings
from cleanday.domain import Status, Tier
from cleanday.ledger import LedgerService
from cleanday.models import T_BEHAVIORS, T_STATES
from cleanday.notion.sender import CHANNEL as NOTION_CHANNEL
from cleanday.notion.sender import notion_row_url, notion_sender
from cleanday.outbox import Backoff, OutboxDelivery, Pending, Route, Sender
from cleanday.outbox_lease import Lease
from cleanday.reactions import presets, slack, temporal
from cleanday.router.core import Router
from cleanday.runtime import schedules
from cleanday.runtime.connect import connect as connect_temporal
from cleanday.runtime.operator import signal_runs
from cleanday.runtime.types import TASK_QUEUE
from cleanday.workorder import WorkOrder

log = logging.getLogger("cleanday.outbox")

Connect = Callable[[], Awaitable[Client]]

# the sign-off recorded -> the run's signal (BehaviorRun's handlers)
_SIGNALS = {
    "approved": BehaviorRun.approve.__name__,
    "rejected": BehaviorRun.reject.__name__,
    "released": BehaviorRun.release.__name__,
}
NO_RUN = "no run in flight"
NO_SCHEDULES = "this Temporal server has no Schedules"


class WakeRuns:
    """Sends a `wake_run` row as its run's signal, and applies a `sync_schedule` row to the
    behavior's Schedule (from its Work Order and status in `engine`'s ledger); the client
    connects on first use (on the delivery's loop) and is kept."""

    def __init__(
        self,
        connect: Connect,
        connect_timeout_s: float = 5.0,
        *,
        engine: Engine | None = None,
        task_queue: str = TASK_QUEUE,
    ) -> None:
        self.connect = connect
        self.connect_timeout_s = connect_timeout_s
        self.engine, self.task_queue = engine, task_queue
        self._client: Client | None = None

    async def __call__(self, row: Pending) -> str:
        if self._client is None:
            self._client = await asyncio.wait_for(self.connect(), self.connect_timeout_s)
        if row.kind == "sync_schedule":
            return await self._sync_schedule(self._client, row.payload["behavior"])
        action = row.payload["action"]
        args: tuple[Any, ...] = ()
        if action == "rejected":
            args = (row.payload.get("reason") or "rejected by the operator",)
        workflow_id = row.payload["workflow_id"]
        told = await signal_runs(self._client, [workflow_id], _SIGNALS[action], *args)
        return "told" if told else NO_RUN

    async def _sync_schedule(self, client: Client, behavior: str) -> str:
        if self.engine is None:
            raise RuntimeError("this delivery has no ledger to read the Work Order from")
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_BEHAVIORS.c.work_order, T_STATES.c.status)
                .join(T_STATES, T_STATES.c.behavior == T_BEHAVIORS.c.name)
                .where(T_BEHAVIORS.c.name == behavior)
            ).first()
        if row is None:
            return "unknown behavior"
        wo = WorkOrder.model_validate(row.work_order)
        try:
            return await schedules.apply(client, wo, Status(row.status), self.task_queue)
        except RPCError as err:
            if err.status != RPCStatusCode.UNIMPLEMENTED:
                raise
            # a server without Schedules (the time-skipping test server): nothing to keep in
            # line, and retrying would never help
            return NO_SCHEDULES


def connect_to(settings: Settings) -> Connect:
    async def connect() -> Client:
        return await connect_temporal(settings)

    return connect


def wake_ups(engine: Engine, connect: Connect, **kw: Any) -> OutboxDelivery:
    """The delivery of wake-ups alone (what the CLI needs)."""
    task_queue = kw.pop("task_queue", TASK_QUEUE)
    sender = WakeRuns(connect, engine=engine, task_queue=task_queue)
    return OutboxDelivery(engine, {temporal.CHANNEL: sender}, **kw)


def attach(app: FastAPI, settings: Settings, connect: Connect | None = None) -> OutboxDelivery:
    """Deliver what the service's commits queue for Temporal (and OpenRouter) right after each
    commit; `app.state.outbox_delivery` is also drained by the scheduler's outbox job."""
    service: LedgerService = app.state.service
    wake = WakeRuns(
        connect or connect_to(settings), engine=service.engine, task_queue=settings.task_queue
    )
    senders: dict[str, Sender] = {temporal.CHANNEL: wake}
    if settings.openrouter_management_key:
        senders[presets.CHANNEL] = publish_presets(Router.from_settings(settings, service.engine))
    if settings.notion_token:
        senders[NOTION_CHANNEL] = notion_sender(settings, service.engine)
    # a sign-off is answered once its runs are told; a publication to OpenRouter is not waited
    # for (a demotion arrives with a run's report, which must not wait on OpenRouter)
    routes: dict[str, Route] = {}
    slack_side = slack_sender.from_settings(
        settings,
        ZoneInfo(service.policy.timezone),
        partial(notion_row_url, service.engine),  # None until its row was written
        service.clock,
    )
    if slack_side is None:
        log.warning(
            "Slack delivery is off (no SLACK_BOT_TOKEN): the outbox keeps every Slack message "
            "until a token is set"
        )
    else:
        senders[slack.CHANNEL], routes[slack.CHANNEL] = slack_side
    # Slack and Notion keep one order per target: one drainer across instances (the lease)
    delivery = OutboxDelivery(
        service.engine,
        senders,
        routes=routes,
        wait_for={temporal.CHANNEL},
        clock=service.clock,
        backoff=Backoff(settings.outbox_backoff_s, settings.outbox_backoff_max_s),
        lease=Lease(service.engine, ttl_s=settings.outbox_lease_s),
    )
    service.subscribe(delivery.after_commit)
    app.state.outbox_delivery = delivery
    return delivery


def publish_presets(router: Router) -> Sender:
    """Sends a `preset_publication` row to OpenRouter through `router`'s management key."""

    async def publish(row: Pending) -> str:
        p = row.payload
        done = await router.publish_remote(p["behavior"], int(p["version"]), Tier(p["tier"]))
        return "published" if done else "not on OpenRouter"

    return publish
