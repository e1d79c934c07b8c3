"""`cleanday demo`: the built-in behaviors through simulated weeks on the time-skipping server.

Real code paths throughout — the behavior workflow and its activities, the router and the
local model provider, the gates, the ledger service over HTTP (in-process), the webhook route —
only the clock is simulated: Temporal's time-skipping test server moves workflow time, and the
ledger's clock follows it. The demo plays the operator: it signs off tier-A batches, releases
tier-B items, and marks every Sunday candidate Promote.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from workflows.behavior_run import BehaviorRun

from cleanday.config import Settings
from cleanday.errors import ConfigError
from cleanday.ledger_client import LedgerClient
from cleanday.runtime.activities import RuntimeDeps
from cleanday.runtime.binaries import temporal_binary
from cleanday.runtime.operator import approve_batch, release_item
from cleanday.runtime.starter import TemporalRunStarter, start_run
from cleanday.runtime.types import RunState
from cleanday.runtime.worker import create_worker, load_work_orders, register_all
from cleanday.workorder import WebhookTrigger, WorkOrder

DEMO_TOKEN = "demo-operator-token-0b7e"
DEMO_HOOK_SECRET = "demo-hook-secret-51c9"
FAILING_BEHAVIOR = "content_pipeline"


@dataclass
class SimClock:
    """The ledger's clock in the demo: the time-skipping server's time, synced as it moves."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    async def sync(self, env: WorkflowEnvironment) -> datetime:
        self.now = (await env.get_current_time()).astimezone(UTC)
        return self.now


@dataclass
class DemoResult:
    rows: list[dict[str, Any]]
    promotions: list[tuple[date, str, str]] = field(default_factory=list)
    demotions: list[tuple[date, str, str]] = field(default_factory=list)
    runs: int = 0
    workflow_ids: list[str] = field(default_factory=list)


@dataclass
class DemoTrace:
    """What a demo left behind, handed to `run_demo(inspect=...)` before anything is torn down:
    the Temporal client (histories), the data dir (ledger database, sink files), the local
    provider (its request log) and the ID of every run the demo started."""

    client: Client
    data_dir: Path
    database_url: str
    provider_url: str
    workflow_ids: list[str]


async def _rest(handle: WorkflowHandle[Any, RunState], *, done: bool = False) -> RunState:
    """Poll a run until it is done (or waiting for the operator, unless `done`).

    Queries, not `handle.result()`: waiting on a result lets the time-skipping server jump to
    the next timer whenever nothing runs, and a run idling for its sign-off would see years pass.
    Here time moves only when the demo sleeps.
    """
    import asyncio

    for _ in range(3000):
        state = await handle.query(BehaviorRun.state)
        if state.phase == "done" or (state.waiting_for and not done):
            return state
        await asyncio.sleep(0.02)
    raise RuntimeError(f"run {handle.id} did not settle: {state}")


class Demo:
    def __init__(
        self,
        env: WorkflowEnvironment,
        ledger: LedgerClient,
        clock: SimClock,
        work_orders: dict[str, WorkOrder],
        task_queue: str,
        hooks: httpx.AsyncClient,
        provider_url: str,
        out: Callable[[str], None],
    ) -> None:
        self.env, self.ledger, self.clock = env, ledger, clock
        self.client: Client = env.client
        self.work_orders, self.task_queue, self.hooks = work_orders, task_queue, hooks
        self.provider_url, self.out = provider_url, out
        self.result = DemoResult(rows=[])
        self.first: date | None = None
        self.told: set[str] = set()  # what the demo has said it did as the operator

    async def sleep_until(self, when: datetime) -> None:
        now = await self.clock.sync(self.env)
        if when > now:
            await self.env.sleep(when - now)
        await self.clock.sync(self.env)

    async def tiers(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in await self.ledger.behaviors()}

    async def day(self, d: date, *, inject_failure: bool) -> None:
        await self.sleep_until(datetime.combine(d, time(7, 0), UTC))
        if inject_failure:
            # the local provider answers the next call with personal data: sensitive_info blocks
            httpx.post(
                f"{self.provider_url}/_control/faults",
                json={"behavior": FAILING_BEHAVIOR, "fault": "pii", "count": 2},
            ).raise_for_status()
        handles = []
        for name, wo in self.work_orders.items():
            if isinstance(wo.trigger, WebhookTrigger):
                handles.append(await self._webhook(name, d))
            else:
                handles.append(await start_run(self.client, name, self.task_queue, trigger="demo"))
        notes: list[str] = []
        acted: list[tuple[str, str]] = []
        self.result.workflow_ids += [h.id for h in handles]
        for handle in handles:
            state = await _rest(handle)
            self.result.runs += 1
            if state.waiting_for == "batch approval":
                await approve_batch(self.client, self.ledger, state.behavior, [handle.id])
                acted.append(("approved", f"{state.behavior}'s batch"))
                state = await _rest(handle, done=True)
            elif state.waiting_for == "release":
                await release_item(self.client, self.ledger, state.behavior, handle.id)
                acted.append(("released", f"{state.behavior}'s staged item"))
                state = await _rest(handle, done=True)
            for g in (g for g in state.gates if not g.passed):
                notes.append(f"  ! {state.behavior}: gate {g.name} failed — {g.reason}")
            for a in state.anomalies:
                notes.append(f"  ~ {state.behavior}: anomaly {a.name} — {a.detail}")
        await self.sleep_until(datetime.combine(d + timedelta(days=1), time(0, 5), UTC))
        if d.weekday() == 6 and d != self.first:
            await self.close_review(d)
        await self.ledger.close_day(d.isoformat())
        rows = await self.tiers()
        cells = " ".join(f"{n}={r['tier']}:{r['clean_days']}" for n, r in sorted(rows.items()))
        self.out(f"{d:%a %Y-%m-%d}  {cells}")
        notes += self._operator_notes(acted)
        for note in notes:
            self.out(note)

    def _operator_notes(self, acted: list[tuple[str, str]]) -> list[str]:
        """What the demo did as the operator today: in full the first time for each behavior,
        then counted, so that the days stay one line each."""
        lines = [
            f"  {verb} {what} as the operator" for verb, what in acted if what not in self.told
        ]
        again = [verb for verb, what in acted if what in self.told]
        self.told.update(what for _, what in acted)
        if again:
            batches, items = again.count("approved"), again.count("released")
            parts = [f"approved {batches} batch{'es' if batches > 1 else ''}"] if batches else []
            if items:
                parts.append(f"released {items} staged item{'s' if items > 1 else ''}")
            lines.append(f"  as the operator: {', '.join(parts)}")
        return lines

    async def _webhook(self, name: str, d: date) -> WorkflowHandle[Any, RunState]:
        from cleanday.webhooks import sign

        body = json.dumps({"event_id": f"evt-{d.isoformat()}", "kind": "demo.tick"}).encode()
        secret = os.environ.get("CLEANDAY_WEBHOOK_SECRET_WEBHOOK_LOGGER", DEMO_HOOK_SECRET)
        headers = sign(secret.encode(), body, int(self.clock.now.timestamp()))
        response = await self.hooks.post(f"/hooks/{name}", content=body, headers=headers)
        response.raise_for_status()
        return self.client.get_workflow_handle_for(BehaviorRun.run, response.json()["workflow_id"])

    async def sunday_review(self, sunday: date) -> None:
        review = await self.ledger.review(sunday.isoformat())
        candidates = [c["name"] for c in review.get("candidates", [])]
        self.out(f"— Sunday review {sunday}: candidates {', '.join(candidates) or 'none'}")
        for name in candidates:
            await self.ledger.decide(sunday.isoformat(), name, "promote")
            self.out(f"  marked {name} Promote in the review, as the operator")

    async def close_review(self, sunday: date) -> None:
        closed = await self.ledger.close_review(sunday.isoformat())
        promoted = ", ".join(closed.get("promoted", [])) or "none"
        held = ", ".join(closed.get("held", [])) or "none"
        self.out(f"— review {sunday} closed at the end of Sunday: promoted {promoted}; held {held}")

    async def report_changes(self, since: int) -> int:
        """Print the promotions and demotions the ledger recorded since entry `since`."""
        shown = since
        for name in self.work_orders:
            for entry in await self.ledger.history(name):
                if entry["kind"] not in ("promoted", "demoted") or entry["seq"] <= since:
                    continue
                shown = max(shown, entry["seq"])
                data = entry.get("data", {})
                frm, to, day = data.get("from"), data.get("to"), str(entry["at"])[:10]
                if entry["kind"] == "promoted":
                    self.result.promotions.append((date.fromisoformat(day), name, f"{frm}→{to}"))
                    week = data.get("week", day)
                    self.out(f"  PROMOTED {name} {frm} → {to} (Promote in the review of {week})")
                    continue
                self.result.demotions.append((date.fromisoformat(day), name, f"{frm}→{to}"))
                self.out(
                    f"  ALERT {name} demoted {frm} → {to} on {day}: gate {data.get('gate')} "
                    f"failed ({data.get('reason')}); run {data.get('run_id')}"
                )
        return shown


def builtin_behaviors_dir() -> Path:
    """The built-in behaviors installed with cleanday: the demo runs them whatever the
    working directory's `behaviors/` (or CLEANDAY_BEHAVIORS_DIR) holds."""
    import importlib.util

    spec = importlib.util.find_spec("behaviors")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the built-in behaviors are not installed with cleanday; reinstall it")
    return Path(next(iter(spec.submodule_search_locations)))


def quiet_runtime() -> Any:
    """A Temporal runtime whose core logs errors only: the time-skipping test server is older
    than the SDK expects, and its capability warnings mean nothing in a demo."""
    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))


async def run_demo(
    weeks: int = 3,
    out: Callable[[str], None] = print,
    data_dir: Path | None = None,
    inspect: Callable[[DemoTrace], Awaitable[None]] | None = None,
    faults: list[dict[str, Any]] | None = None,
) -> DemoResult:
    """Run the demo; returns what happened (the tests check it).

    `inspect`, when given, sees the demo's trace after the last day and before the servers
    stop (the canary sweep); `faults` are queued on the local provider before the first day,
    so error paths run too.
    """
    from cleanday.db import make_engine, migrate
    from cleanday.ledger import LedgerService
    from cleanday.localprovider import local_provider_in_thread
    from cleanday.router import Router
    from cleanday.runtime.model import bind_all, router_models
    from cleanday.service.app import create_app
    from cleanday.service.routes import hooks
    from cleanday.sinks import FileSink

    os.environ.setdefault("CLEANDAY_WEBHOOK_SECRET_WEBHOOK_LOGGER", DEMO_HOOK_SECRET)
    behaviors_dir = builtin_behaviors_dir()
    with tempfile.TemporaryDirectory(prefix="cleanday-demo-") as tmp:
        data = data_dir or Path(tmp)
        scripts = behaviors_dir / "local_scripts.yaml"
        with local_provider_in_thread(scripts if scripts.exists() else None) as provider:
            for fault in faults or []:
                httpx.post(f"{provider.url}/_control/faults", json=fault).raise_for_status()
            env = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=temporal_binary("temporal-test-server"),
                runtime=quiet_runtime(),
            )
            try:
                start = (await env.get_current_time()).astimezone(UTC)
                clock = SimClock(start)
                db_url = f"sqlite:///{data / 'ledger.db'}"
                engine = make_engine(db_url)
                migrate(engine)
                settings = Settings(
                    CLEANDAY_TOKEN=DEMO_TOKEN,
                    CLEANDAY_DATA_DIR=data,
                    DATABASE_URL=db_url,
                    CLEANDAY_LOCAL_PROVIDER_URL=provider.url + "/v1",
                )
                app = create_app(settings, LedgerService(engine, clock=clock), scheduler=False)
                if not any(getattr(r, "path", None) == "/hooks/{behavior}" for r in app.routes):
                    app.include_router(hooks.router)
                queue = f"demo-{uuid.uuid4().hex[:6]}"
                app.state.run_starter = TemporalRunStarter(env.client, queue)
                app.state.clock = clock
                transport = httpx.ASGITransport(app=app)
                router = Router.from_settings(settings)
                found = load_work_orders(behaviors_dir)
                work_orders = {n: wo for n, (wo, _) in found.items()}
                async with (
                    LedgerClient("http://ledger", DEMO_TOKEN, transport=transport) as ledger,
                    httpx.AsyncClient(transport=transport, base_url="http://ledger") as http,
                ):
                    deps = RuntimeDeps(
                        ledger=ledger,
                        work_orders=work_orders,
                        model_for=router_models(router),
                        sink=FileSink(data),
                        data_dir=data,
                    )
                    async with create_worker(env.client, deps, queue):
                        demo = Demo(env, ledger, clock, work_orders, queue, http, provider.url, out)
                        result = await _simulate(demo, found, router, weeks, bind_all)
                        if inspect is not None:
                            trace = DemoTrace(
                                env.client, data, db_url, provider.url, result.workflow_ids
                            )
                            await inspect(trace)
                        return result
            finally:
                await env.shutdown()


async def _simulate(
    demo: Demo,
    found: dict[str, tuple[WorkOrder, str]],
    router: Any,
    weeks: int,
    bind_all: Callable[..., Any],
) -> DemoResult:
    out = demo.out
    now = await demo.clock.sync(demo.env)
    # start on a Sunday morning, so the first review comes a full week later
    first = now.date() + timedelta(days=(6 - now.weekday()) % 7 or 7)
    await demo.sleep_until(datetime.combine(first, time(6, 0), UTC))
    demo.first = first
    await register_all(demo.ledger, (text for _, text in found.values()))
    await bind_all(router, list(demo.work_orders.values()))
    out(f"registered {len(found)} built-in behaviors at tier A on {first:%a %Y-%m-%d}")
    out("each line: behavior=tier:clean days, after the day closes")
    seen = 0
    for offset in range(7 * weeks + 1):
        d = first + timedelta(days=offset)
        if d.weekday() == 6 and offset > 0:
            await demo.sunday_review(d)
        inject = offset == 7 * (weeks - 1) + 3  # a Wednesday in the last week
        if inject:
            out(f"— injecting a gate failure: {FAILING_BEHAVIOR} will leak personal data")
        await demo.day(d, inject_failure=inject)
        seen = await demo.report_changes(seen)
    demo.result.rows = await demo.ledger.behaviors()
    out("")
    out("final ledger:")
    for r in demo.result.rows:
        failure = r.get("last_gate_failure") or "-"
        reason = r.get("last_failure_reason") or ""
        out(
            f"  {r['name']:<18} tier {r['tier']:<5} {r['status']:<8} "
            f"{r['clean_days']:>2} clean days  last failure {failure} {reason}"
        )
    out(f"{demo.result.runs} runs in {7 * weeks + 1} simulated days")
    return demo.result
