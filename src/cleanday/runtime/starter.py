"""Starting behavior runs from outside a schedule: webhooks, the CLI, the demo and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError
from workflows.behavior_run import BehaviorRun

from cleanday.config import Settings
from cleanday.domain import Status
from cleanday.errors import InfrastructureError, NotRunnable
from cleanday.runtime import search, wakeups
from cleanday.runtime.connect import connect
from cleanday.runtime.types import RunRequest, RunState
from cleanday.webhook_inbox import WebhookInbox


async def start_run(
    client: Client,
    behavior: str,
    task_queue: str,
    input: dict[str, Any] | None = None,
    *,
    trigger: str = "manual",
    workflow_id: str | None = None,
) -> WorkflowHandle[BehaviorRun, RunState]:
    """Start one run; its workflow ID is the run ID the ledger counts once."""
    tagged = await search.ready(client)
    return await client.start_workflow(
        BehaviorRun.run,
        RunRequest(behavior=behavior, input=input or {}, trigger=trigger, search_attributes=tagged),
        id=workflow_id or f"{behavior}-{trigger}-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
        # a delivery is one run: the same ID again (a retried start) is refused, not rerun
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )


class TemporalRunStarter:
    """The RunStarter of webhook deliveries (cleanday.webhook_inbox): a workflow ID that
    Temporal already has is a delivery already started, not an error."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def __call__(
        self, behavior: str, input: dict[str, Any], workflow_id: str, *, trigger: str = "webhook"
    ) -> str:
        try:
            handle = await start_run(
                self.client,
                behavior,
                self.task_queue,
                input,
                trigger=trigger,
                workflow_id=workflow_id,
            )
        except WorkflowAlreadyStartedError:
            return workflow_id  # a retried start of a stored delivery: it runs once
        return handle.id


class LazyTemporalRunStarter:
    """A RunStarter that connects to Temporal on first use (the service may start first)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._inner: TemporalRunStarter | None = None

    async def client(self) -> Client:
        if self._inner is None:
            s = self.settings
            client = await connect(s)
            self._inner = TemporalRunStarter(client, s.task_queue)
        return self._inner.client

    async def __call__(
        self, behavior: str, input: dict[str, Any], workflow_id: str, *, trigger: str = "webhook"
    ) -> str:
        await self.client()
        assert self._inner is not None
        return await self._inner(behavior, input, workflow_id, trigger=trigger)


@dataclass(frozen=True)
class StartedRun:
    behavior: str
    run_id: str  # also its workflow ID
    temporal_ui: str  # the run in the Temporal UI

    def to_json(self) -> dict[str, str]:
        return {
            "behavior": self.behavior,
            "run_id": self.run_id,
            "workflow_id": self.run_id,
            "temporal_ui": self.temporal_ui,
        }


async def run_now(
    starter: Any, service: Any, settings: Settings, behavior: str, input: dict[str, Any]
) -> StartedRun:
    """Start a run of `behavior` now (`cleanday run`, `POST /api/v1/behaviors/{name}/runs`, the
    Pane's Run now): refused unless it is active; an unreachable Temporal is an
    InfrastructureError naming TEMPORAL_ADDRESS. `starter` is a TemporalRunStarter or
    LazyTemporalRunStarter; `service` the LedgerService."""
    state = service.state(behavior)  # UnknownBehaviorError names an unregistered one
    if state.status is not Status.ACTIVE:
        raise NotRunnable(
            f"{behavior} is {state.status.value}: nothing would run; "
            + ("`cleanday resume` it first" if state.status is not Status.RETIRED else "")
        )
    workflow_id = f"{behavior}-manual-{uuid.uuid4().hex[:12]}"
    try:
        run_id = await starter(behavior, input, workflow_id, trigger="manual")
    except (RuntimeError, OSError, RPCError) as exc:  # connect failures, the server down
        raise InfrastructureError(
            "temporal",
            f"could not start a run of {behavior}: Temporal at {settings.temporal_address} did "
            f"not answer ({type(exc).__name__}: {exc}); is it running (cleanday up) and is "
            "TEMPORAL_ADDRESS right?",
        ) from None
    return StartedRun(behavior, run_id, settings.temporal_run_url(run_id))


def attach_runtime(app: FastAPI, settings: Settings) -> None:
    """Give a ledger service app its Temporal side: webhooks start runs (deliveries Temporal
    could not take are started by a round every `CLEANDAY_WEBHOOK_RETRY_SECONDS` while the app
    runs), and what its commits queue for Temporal (a sign-off's wake-ups) is delivered right
    after them."""
    from cleanday.service.routes import hooks

    if not any(getattr(r, "path", None) == "/hooks/{behavior}" for r in app.routes):
        app.include_router(hooks.router)
    starter = LazyTemporalRunStarter(settings)
    app.state.run_starter = starter
    service = app.state.service
    inbox = WebhookInbox(service.engine, starter, clock=service.clock)
    app.state.webhook_inbox = inbox
    run_inbox(app, inbox, settings.webhook_retry_s)
    wakeups.attach(app, settings)


def run_inbox(app: FastAPI, inbox: WebhookInbox, every_s: float) -> None:
    """Run the inbox's round on the app's event loop for as long as the app is up (its start
    also picks up deliveries stored while the service was down)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            task = asyncio.get_running_loop().create_task(inbox.run(every_s))
            try:
                yield state
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await inbox.close()

    app.router.lifespan_context = lifespan
