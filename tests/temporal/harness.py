"""A behavior runtime wired for tests: a Temporal env, the ledger app in-process, a worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker
from workflows.behavior_run import BehaviorRun

from cleanday.config import Settings
from cleanday.db import make_engine, migrate
from cleanday.domain import Tier
from cleanday.ledger import LedgerService
from cleanday.ledger_client import LedgerClient
from cleanday.router import Completion, Router
from cleanday.runtime.activities import RuntimeDeps
from cleanday.runtime.model import BoundModel
from cleanday.runtime.types import RunRequest, RunState
from cleanday.runtime.worker import create_worker
from cleanday.service.app import create_app
from cleanday.sinks import FileSink
from cleanday.steps import ModelCaller
from cleanday.workorder import WorkOrder

TOKEN = "test-token-7c1e"


def work_order(name: str, **overrides: Any) -> dict[str, Any]:
    """A Work Order for the test step, as the YAML mapping an operator would write."""
    wo: dict[str, Any] = {
        "name": name,
        "description": "writes one note per run",
        "trigger": {"type": "cron", "cron": "0 7 * * *", "timezone": "UTC"},
        "reports": "the note it wrote",
        "key": {"ref": f"env:TEST_KEY_{name.upper()}", "cap_usd": 5},
        "preset": {"name": name, "model": "local/echo"},
        "gates": [{"name": "sensitive_info", "mode": "block"}],
        "entry": "tests.temporal.steps:run",
        "stage_expiry_hours": 24,
    }
    wo.update(overrides)
    return wo


@dataclass
class HeldModel:
    """The behavior's real bound model, whose calls wait until the test lets them go."""

    inner: ModelCaller
    hold: asyncio.Event
    held: asyncio.Event  # set once a call is waiting on `hold`

    async def complete(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> Completion:
        self.held.set()
        await self.hold.wait()
        return await self.inner.complete(messages, response_format)


@dataclass
class Stack:
    client: Client
    ledger: LedgerClient
    router: Router
    data_dir: Path
    task_queue: str
    work_orders: dict[str, WorkOrder] = field(default_factory=dict)
    holds: dict[str, asyncio.Event] = field(default_factory=dict)
    held: dict[str, asyncio.Event] = field(default_factory=dict)

    async def register(self, raw: dict[str, Any], tier: Tier = Tier.A) -> WorkOrder:
        text = yaml.safe_dump(raw, sort_keys=False)
        await self.ledger.register(text)
        wo = WorkOrder.model_validate(raw)
        await self.router.bind(wo)
        self.work_orders[wo.name] = wo
        if tier is not Tier.A:
            await self.ledger.override(
                wo.name, "test starts here", kind="forced_tier", tier=tier.value
            )
        return wo

    async def start(
        self, behavior: str, input: dict[str, Any] | None = None
    ) -> WorkflowHandle[Any, RunState]:
        return await self.client.start_workflow(
            BehaviorRun.run,
            RunRequest(behavior=behavior, input=input or {}),
            id=f"{behavior}-{uuid.uuid4().hex[:12]}",
            task_queue=self.task_queue,
        )

    async def wait_for(self, handle: WorkflowHandle[Any, RunState], waiting_for: str) -> RunState:
        for _ in range(400):
            state = await handle.query(BehaviorRun.state)
            if state.waiting_for == waiting_for:
                return state
            await asyncio.sleep(0.05)
        raise AssertionError(f"run never waited for {waiting_for}: {state}")

    async def wait_for_phase(self, handle: WorkflowHandle[Any, RunState], phase: str) -> RunState:
        for _ in range(400):
            state = await handle.query(BehaviorRun.state)
            if state.phase == phase:
                return state
            await asyncio.sleep(0.05)
        raise AssertionError(f"run never reached {phase}: {state}")

    async def tier(self, behavior: str) -> str:
        body = await self.ledger.behavior(behavior)
        return str(body["state"]["tier"])

    def model_for(self, wo: WorkOrder, tier: Tier, run_id: str) -> ModelCaller:
        model: ModelCaller = BoundModel(self.router, wo.name, tier, run_id)
        hold = self.holds.get(wo.name)
        if hold is None:
            return model
        return HeldModel(model, hold, self.held.setdefault(wo.name, asyncio.Event()))

    async def wait_held(self, behavior: str) -> None:
        """Until a run of `behavior` has its model call waiting on its hold."""
        await asyncio.wait_for(self.held.setdefault(behavior, asyncio.Event()).wait(), 20)

    def sink_files(self, behavior: str) -> list[str]:
        root = self.data_dir / "sinks" / behavior
        return sorted(p.name for p in root.glob("*.txt")) if root.exists() else []


def ledger_app(data_dir: Path, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """The real ledger service app over a fresh, migrated SQLite ledger in `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{data_dir / 'ledger.db'}")
    migrate(engine)
    settings = Settings(CLEANDAY_TOKEN=TOKEN, CLEANDAY_DATA_DIR=data_dir)
    return create_app(settings, LedgerService(engine, clock=clock), scheduler=False)


@asynccontextmanager
async def running_stack(
    client: Client,
    app: Any,
    data_dir: Path,
    provider_url: str,
    *,
    model_for: Callable[..., ModelCaller] | None = None,
    task_queue: str | None = None,
) -> AsyncIterator[Stack]:
    """The ledger app in-process (ASGI), the router on the local provider over the ledger's
    database, a worker on a fresh task queue, the file sink."""
    transport = httpx.ASGITransport(app=app)
    db_url = str(app.state.service.engine.url)
    settings = Settings(
        CLEANDAY_TOKEN=TOKEN,
        CLEANDAY_DATA_DIR=data_dir,
        CLEANDAY_LOCAL_PROVIDER_URL=provider_url,
    )
    # the router keeps its own engine on the same database, as in a worker process
    router = Router.from_settings(settings.model_copy(update={"database_url": db_url}))
    async with LedgerClient("http://ledger", TOKEN, transport=transport) as ledger:
        queue = task_queue or f"test-{uuid.uuid4().hex[:8]}"
        stack = Stack(client, ledger, router, data_dir, queue)
        deps = RuntimeDeps(
            ledger=ledger,
            work_orders=stack.work_orders,
            model_for=model_for or stack.model_for,
            sink=FileSink(data_dir),
            data_dir=data_dir,
            bind=router.bind,  # a Work Order the worker fetches from the ledger, as in `worker`
        )
        # sandboxed here: the sandbox's restrictions check the workflow's determinism
        worker: Worker = create_worker(client, deps, stack.task_queue, sandboxed=True)
        async with worker:
            yield stack
