"""The worker process: registers the behaviors it runs, syncs their schedules, runs their runs."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from workflows.behavior_run import BehaviorRun

from cleanday import bounded_yaml
from cleanday.config import Settings
from cleanday.errors import BehaviorRetired, WorkOrderError
from cleanday.ledger_client import LedgerClient
from cleanday.router import Router
from cleanday.runtime import search
from cleanday.runtime.activities import RuntimeActivities, RuntimeDeps
from cleanday.runtime.connect import connect, worker_runtime
from cleanday.runtime.converter import DATA_CONVERTER, with_converter
from cleanday.runtime.model import bind_all, router_models
from cleanday.runtime.schedules import sync_schedules
from cleanday.workorder import WorkOrder

log = logging.getLogger("cleanday.worker")

SCHEDULE_SYNC_SECONDS = 30.0


def load_work_orders(directory: Path) -> dict[str, tuple[WorkOrder, str]]:
    """Every Work Order in `directory` (*.yaml), by name, with its YAML text.

    Other YAML files there (a behavior's data, the local provider's scripts) have no `entry`
    and are skipped.
    """
    found: dict[str, tuple[WorkOrder, str]] = {}
    for path in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
        text = path.read_text(encoding="utf-8")
        raw = bounded_yaml.load(text)
        if not (isinstance(raw, dict) and "entry" in raw and "trigger" in raw):
            continue
        try:
            wo = WorkOrder.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or None
            raise WorkOrderError(str(path), err["msg"], field=field) from exc
        found[wo.name] = (wo, text)
    return found


async def register_all(ledger: LedgerClient, texts: Iterable[str]) -> dict[str, int]:
    """Register each Work Order with the ledger (unchanged ones change nothing there); the
    version the ledger holds of each, by name. A retired behavior's is left out (logged)."""
    versions: dict[str, int] = {}
    for text in texts:
        try:
            result = await ledger.register(text)
        except BehaviorRetired as exc:  # its file is still there; it is not run, nor bound
            log.info("skipped: %s", exc)
            continue
        versions[str(result["name"])] = int(result["version"])
    return versions


def create_worker(
    client: Client,
    deps: RuntimeDeps,
    task_queue: str,
    *,
    max_concurrent_activities: int = 100,
    sandboxed: bool = False,
) -> Worker:
    """The worker of behavior runs.

    BehaviorRun runs outside Temporal's workflow sandbox by default: the sandbox re-imports the
    workflow's module for every run and intercepts every activation, which cost a third of the
    worker's CPU per run, while the workflow uses no clock, randomness or I/O of its own (only
    workflow.now() and activities). The test suite runs it sandboxed (`sandboxed=True`), so a
    change that reaches for something nondeterministic still fails there.
    """
    activities = RuntimeActivities(deps)
    runner = SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner()
    return Worker(
        with_converter(client),  # its runs' dataclasses decode with their types resolved once
        task_queue=task_queue,
        workflows=[BehaviorRun],
        activities=activities.all(),
        workflow_runner=runner,
        max_concurrent_activities=max_concurrent_activities,
        # a graceful stop lets activities in flight finish before the worker exits
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(settings: Settings, *, ready: asyncio.Event | None = None) -> bool:
    """`cleanday worker`: connect, register behaviors, sync schedules, run until SIGINT/SIGTERM
    or SIGHUP; True after a SIGHUP (the caller re-executes: cleanday.runtime.reload)."""
    from cleanday.db import make_engine
    from cleanday.notion.sink import sink_for

    # httpx logs every request at INFO: three ledger calls and a model call per run would
    # bury the worker's own lines and cost CPU on every run
    logging.getLogger("httpx").setLevel(logging.WARNING)
    runtime = worker_runtime(settings)  # the SDK's worker metrics, when a port is set
    client = await connect(settings, data_converter=DATA_CONVERTER, runtime=runtime)
    if runtime is not None:
        log.info(
            "worker metrics for Prometheus on %s:%d/metrics",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
        )
    await search.ensure(client)  # the dev server of `cleanday up` takes them; others may not
    found = load_work_orders(settings.behaviors_dir)
    async with LedgerClient(settings.resolved_service_url, settings.token) as ledger:
        versions = await register_all(ledger, (text for _, text in found.values()))
        work_orders = {name: wo for name, (wo, _) in found.items() if name in versions}
        router = Router.from_settings(settings)
        await bind_all(router, list(work_orders.values()))
        deps = RuntimeDeps(
            ledger=ledger,
            work_orders=work_orders,
            model_for=router_models(router),
            # Notion for the configured behaviors' acts with NOTION_TOKEN, else files
            sink=sink_for(settings, make_engine(settings.resolved_database_url)),
            data_dir=settings.data_dir,
            ledger_retry_s=settings.ledger_retry_s,
            bind=router.bind,
            versions=versions,
        )
        await sync_schedules(client, ledger, work_orders.values(), settings.task_queue)
        worker = create_worker(client, deps, settings.task_queue)
        stop = asyncio.Event()
        reloading = False

        def reload() -> None:
            nonlocal reloading
            reloading = True
            stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload)
        log.info("worker on task queue %s, %d behaviors", settings.task_queue, len(work_orders))
        syncing = asyncio.create_task(
            _keep_schedules_in_sync(client, ledger, work_orders, settings)
        )
        async with worker:
            if ready is not None:
                ready.set()
            await stop.wait()
            why = "reloading (SIGHUP)" if reloading else "stopping"
            log.info("worker %s: finishing activities in flight", why)
            syncing.cancel()
        await router.drain()  # settlements of the last answered model calls
    return reloading


async def _keep_schedules_in_sync(
    client: Client, ledger: LedgerClient, work_orders: dict[str, WorkOrder], settings: Settings
) -> None:
    """Follow the ledger's statuses: a quarantine there pauses the schedule here within a period."""
    while True:
        await asyncio.sleep(SCHEDULE_SYNC_SECONDS)
        try:
            await sync_schedules(client, ledger, work_orders.values(), settings.task_queue)
        except Exception:  # the next period tries again; a worker must not die of this
            log.exception("schedule sync failed")
