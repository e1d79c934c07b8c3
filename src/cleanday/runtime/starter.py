"""Starting behavior runs from outside a schedule: webhooks, the CLI, the demo and benchmarks."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from workflows.behavior_run import BehaviorRun

from cleanday.config import Settings
from cleanday.runtime import wakeups
from cleanday.runtime.types import RunRequest, RunState


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
    return await client.start_workflow(
        BehaviorRun.run,
        RunRequest(behavior=behavior, input=input or {}, trigger=trigger),
        id=workflow_id or f"{behavior}-{trigger}-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
        # a delivery is one run: the same ID again (a retried start) is refused, not rerun
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )


class TemporalRunStarter:
    """The RunStarter the webhook route uses (cleanday.service.routes.hooks)."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def __call__(self, behavior: str, input: dict[str, Any], workflow_id: str) -> str:
        handle = await start_run(
            self.client,
            behavior,
            self.task_queue,
            input,
            trigger="webhook",
            workflow_id=workflow_id,
        )
        return handle.id


class LazyTemporalRunStarter:
    """A RunStarter that connects to Temporal on first use (the service may start first)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._inner: TemporalRunStarter | None = None

    async def client(self) -> Client:
        if self._inner is None:
            s = self.settings
            client = await Client.connect(s.temporal_address, namespace=s.temporal_namespace)
            self._inner = TemporalRunStarter(client, s.task_queue)
        return self._inner.client

    async def __call__(self, behavior: str, input: dict[str, Any], workflow_id: str) -> str:
        await self.client()
        assert self._inner is not None
        return await self._inner(behavior, input, workflow_id)


def attach_runtime(app: FastAPI, settings: Settings) -> None:
    """Give a ledger service app its Temporal side: webhooks start runs, and what its commits
    queue for Temporal (a sign-off's wake-ups) is delivered right after them."""
    from cleanday.service.routes import hooks

    if not any(getattr(r, "path", None) == "/hooks/{behavior}" for r in app.routes):
        app.include_router(hooks.router)
    app.state.run_starter = LazyTemporalRunStarter(settings)
    wakeups.attach(app, settings)
