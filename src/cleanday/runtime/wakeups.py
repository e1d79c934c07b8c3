"""What a process with a Temporal client delivers from the outbox: the wake-ups of runs waiting
for a sign-off, and (with OPENROUTER_MANAGEMENT_KEY) preset publications to OpenRouter.

A sign-off from any door (the API, the CLI, a form, a Notion decision) raises `ItemsSignedOff`
in the ledger; its reaction queues one `wake_run` row per run (`cleanday.reactions.temporal`),
and the delivery attached here sends it as the run's signal right after the commit, before the
sign-off is answered. The signal only wakes: the run asks the ledger for its permit before
acting, and a run that is never told finds its sign-off at its own next check of the ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine
from temporalio.client import Client
from workflows.behavior_run import BehaviorRun

from cleanday.config import Settings
from cleanday.domain import Tier
from cleanday.ledger import LedgerService
from cleanday.outbox import OutboxDelivery, Pending, Sender
from cleanday.reactions import presets, temporal
from cleanday.router.core import Router
from cleanday.runtime.operator import signal_runs

Connect = Callable[[], Awaitable[Client]]

# the sign-off recorded -> the run's signal (BehaviorRun's handlers)
_SIGNALS = {
    "approved": BehaviorRun.approve.__name__,
    "rejected": BehaviorRun.reject.__name__,
    "released": BehaviorRun.release.__name__,
}
NO_RUN = "no run in flight"


class WakeRuns:
    """Sends a `wake_run` row as its run's signal; the client connects on first use (on the
    delivery's loop) and is kept."""

    def __init__(self, connect: Connect, connect_timeout_s: float = 5.0) -> None:
        self.connect = connect
        self.connect_timeout_s = connect_timeout_s
        self._client: Client | None = None

    async def __call__(self, row: Pending) -> str:
        if self._client is None:
            self._client = await asyncio.wait_for(self.connect(), self.connect_timeout_s)
        action = row.payload["action"]
        args: tuple[Any, ...] = ()
        if action == "rejected":
            args = (row.payload.get("reason") or "rejected by the operator",)
        workflow_id = row.payload["workflow_id"]
        told = await signal_runs(self._client, [workflow_id], _SIGNALS[action], *args)
        return "told" if told else NO_RUN


def connect_to(settings: Settings) -> Connect:
    async def connect() -> Client:
        return await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace
        )

    return connect


def wake_ups(engine: Engine, connect: Connect, **kw: Any) -> OutboxDelivery:
    """The delivery of wake-ups alone (what the CLI needs)."""
    return OutboxDelivery(engine, {temporal.CHANNEL: WakeRuns(connect)}, **kw)


def attach(app: FastAPI, settings: Settings, connect: Connect | None = None) -> OutboxDelivery:
    """Deliver what the service's commits queue for Temporal (and OpenRouter) right after each
    commit; `app.state.outbox_delivery` is also drained by the scheduler's outbox job."""
    service: LedgerService = app.state.service
    senders: dict[str, Sender] = {temporal.CHANNEL: WakeRuns(connect or connect_to(settings))}
    if settings.openrouter_management_key:
        senders[presets.CHANNEL] = publish_presets(Router.from_settings(settings, service.engine))
    # a sign-off is answered once its runs are told; a publication to OpenRouter is not waited
    # for (a demotion arrives with a run's report, which must not wait on OpenRouter)
    delivery = OutboxDelivery(
        service.engine, senders, wait_for={temporal.CHANNEL}, clock=service.clock
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
