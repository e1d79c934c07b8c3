"""The behavior run's activities: run the step and its gates, act with a permit, report."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from cleanday import entrypoints
from cleanday.domain import Status, Tier
from cleanday.errors import (
    BehaviorRetired,
    ConfigError,
    GateFailure,
    InfrastructureError,
    LedgerUnavailable,
    PermitDenied,
    RoutingError,
    RunConflict,
    SecretResolutionError,
)
from cleanday.ledger_client import LedgerClient
from cleanday.router.types import Attempt, Completion
from cleanday.runtime.redaction import redacted, without_secrets
from cleanday.runtime.types import (
    BLOCKED,
    SUCCEEDED,
    ActAndReport,
    ActRequest,
    ActResult,
    AnomalyOutcome,
    Binding,
    Checked,
    FailedStep,
    GateOutcome,
    StepOutput,
    StepRequest,
    Verdict,
)
from cleanday.steps import Action, ModelCaller, StepContext, StepResult
from cleanday.workorder import WorkOrder

log = logging.getLogger("cleanday.worker")

# What a step may take, by the preset's timeout class: a few model calls plus the step's own work.
STEP_TIMEOUT_SECONDS = {"fast": 120.0, "reasoning": 600.0}
# run_step enforces its class's timeout itself (the workflow learns the class only from the
# activity); Temporal's own start-to-close is this ceiling above every class.
STEP_CEILING_SECONDS = max(STEP_TIMEOUT_SECONDS.values()) + 60.0
# the ApplicationError type run_step raises when its step ran past its timeout class
STEP_TIMED_OUT = "StepTimedOut"
# the ApplicationError type (non-retryable, details: the kind) of an InfrastructureError: the
# deployment kept the step from running, and the workflow reports the run as infra_error
INFRA_ERROR_TYPE = "InfrastructureError"
# how long a run's reads of the ledger wait out an outage before it is an infrastructure error
LEDGER_RETRY_SECONDS = 300.0
_BACKOFF_FIRST, _BACKOFF_MAX = 0.25, 5.0

MEDIANS_TTL_SECONDS = 60.0

ModelFactory = Callable[[WorkOrder, Tier, str], ModelCaller]
"""Builds the behavior's bound model (router, key, preset at its tier) for one run."""


@dataclass
class RuntimeDeps:
    ledger: LedgerClient
    work_orders: MutableMapping[str, WorkOrder]
    model_for: ModelFactory
    sink: Any  # cleanday.sinks.Sink: act(behavior, action) -> str
    data_dir: Path
    ledger_retry_s: float = LEDGER_RETRY_SECONDS  # CLEANDAY_LEDGER_RETRY_SECONDS
    # binds a Work Order fetched from the ledger in the router (Router.bind); None: no router
    bind: Callable[[WorkOrder], Awaitable[Any]] | None = None
    # the ledger's version of each Work Order in `work_orders`, where known
    versions: dict[str, int] = field(default_factory=dict)


class SharedReads:
    """Reads of one key shared by the callers that ask while another read of it is in flight.

    Each caller gets the answer of a read that *started after it asked*: callers arriving while
    a read is in flight wait for the next one, which all of them share. So no answer is older
    than its question (a demotion recorded before a run asked is always seen), yet N runs
    starting together cost the ledger about two reads instead of N.
    """

    def __init__(self, read: Callable[[str], Awaitable[dict[str, Any]]]) -> None:
        self._read = read
        self._next: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}

    async def get(self, key: str) -> dict[str, Any]:
        waiting = self._next.get(key)
        if waiting is None:
            waiting = self._next[key] = asyncio.get_running_loop().create_future()
            if key not in self._readers:
                self._readers[key] = asyncio.create_task(self._drain(key))
        # shielded: one caller's cancelled activity must not cancel the others' answer
        return await asyncio.shield(waiting)

    async def _drain(self, key: str) -> None:
        try:
            while (waiting := self._next.pop(key, None)) is not None:
                try:
                    waiting.set_result(await self._read(key))
                except Exception as exc:  # every caller of this read sees it and retries
                    waiting.set_exception(exc)
                    waiting.exception()  # retrieved here too: no warning if all were cancelled
        finally:
            del self._readers[key]


class CoalescedReports:
    """Run reports sent together: while one batch request is in flight, the reports that
    arrive wait and go in the next one (`POST /api/v1/runs/batch`), so N runs finishing
    together cost the ledger a few requests instead of N. A lone report goes at once.

    Each caller gets its own report's result. The batch is all or nothing: when it fails, every
    caller in it gets the error (and reports on its own, idempotent by run ID).

    A batch goes in the order its runs' steps finished (`finished_at`): the ledger folds a
    behavior's reports in that order, so a batch in arrival order would make it recompute the
    behavior from all its entries (the refold) for each report that came in ahead of an
    earlier-finished one. Across batches a late report still costs a refold; that is rare.
    """

    def __init__(self, ledger: LedgerClient, max_batch: int = 100) -> None:
        self._ledger = ledger
        self._max = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[tuple[bool, dict[str, Any]]]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def report(self, report: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        answer: asyncio.Future[tuple[bool, dict[str, Any]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.append((report, answer))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())
        # shielded: one caller's cancelled activity must not cancel the batch of the others
        return await asyncio.shield(answer)

    async def _send(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                batch.sort(key=lambda pair: _finished_at(pair[0]))
                try:
                    results = await self._ledger.report_runs([r for r, _ in batch])
                    if len(results) != len(batch):
                        raise LedgerUnavailable(
                            f"the ledger answered {len(results)} results for {len(batch)} reports"
                        )
                except Exception as exc:  # every caller of this batch sees it
                    for _, answer in batch:
                        answer.set_exception(exc)
                        answer.exception()  # retrieved: no warning if its caller is gone
                    continue
                for (_, answer), result in zip(batch, results, strict=True):
                    answer.set_result(result)
        finally:
            self._sender = None


class RuntimeActivities:
    """Class-based activities so the worker injects the ledger client, router and sink."""

    def __init__(self, deps: RuntimeDeps) -> None:
        self.deps = deps
        self._medians: dict[str, tuple[float, dict[str, Any]]] = {}
        self._states = SharedReads(deps.ledger.state)
        self._reports = CoalescedReports(deps.ledger)

    async def _patiently(self, read: Callable[[], Awaitable[Any]], what: str) -> Any:
        """`read()`, retried with backoff while the ledger does not answer, for as long as the
        outage lasts up to `ledger_retry_s`; past it an InfrastructureError("ledger"). A run
        waits out a restart of the ledger service (about 3 s) instead of failing its step."""
        give_up = time.monotonic() + self.deps.ledger_retry_s
        wait = _BACKOFF_FIRST
        while True:
            try:
                return await read()
            except LedgerUnavailable as exc:
                if time.monotonic() + wait > give_up:
                    raise InfrastructureError(
                        "ledger",
                        f"{what}: the ledger did not answer for {self.deps.ledger_retry_s:g} s "
                        f"(CLEANDAY_LEDGER_RETRY_SECONDS): {exc}",
                    ) from exc
                log.warning("%s: ledger unavailable, retrying in %.2g s", what, wait)
            if activity.in_activity() and not activity.info().is_local:
                activity.heartbeat()  # the step's heartbeat timeout must not end the wait
            await asyncio.sleep(wait)
            wait = min(wait * 2, _BACKOFF_MAX)

    async def _trailing_medians(self, behavior: str) -> dict[str, Any]:
        # 14-day medians barely move within a minute; asking once a minute per behavior
        # instead of once a run keeps the ledger's load per run down
        now = time.monotonic()
        cached = self._medians.get(behavior)
        if cached is None or cached[0] < now:
            medians = await self._patiently(
                lambda: self.deps.ledger.medians(behavior), f"medians of {behavior}"
            )
            cached = (now + MEDIANS_TTL_SECONDS, medians)
            self._medians[behavior] = cached
        return cached[1]

    def _work_order(self, behavior: str) -> WorkOrder:
        wo = self.deps.work_orders.get(behavior)
        if wo is None:  # _binding fetched it, or said why it could not
            raise InfrastructureError("work_order", f"this worker has no Work Order for {behavior}")
        return wo

    async def _current_work_order(self, behavior: str, version: int | None) -> WorkOrder:
        """The Work Order version the ledger holds (`version`, from the state just read): the
        one this worker has, or else fetched from the ledger and bound in the router now. So a
        behavior registered, or re-registered, while the worker runs is run by its next run."""
        known = self.deps.work_orders.get(behavior)
        have = self.deps.versions.get(behavior)
        if known is not None and (version is None or have is None or have == version):
            return known
        body = await self._patiently(
            lambda: self.deps.ledger.work_order(behavior), f"work order of {behavior}"
        )
        try:
            wo = WorkOrder.model_validate(body["work_order"])
            if self.deps.bind is not None:
                await self.deps.bind(wo)
        except Exception as exc:  # the ledger's version is one this worker cannot run
            raise InfrastructureError(
                "work_order",
                f"behavior {behavior}: this worker cannot use Work Order version "
                f"{body.get('version')} from the ledger ({type(exc).__name__}: {exc}); "
                "upgrade or reload the worker",
            ) from None
        self.deps.work_orders[behavior] = wo
        self.deps.versions[behavior] = int(body["version"])
        log.info("behavior %s: Work Order version %s loaded", behavior, body["version"])
        return wo

    async def _binding(self, behavior: str) -> Binding:
        """The behavior's tier, status, bound preset version and key, as of now."""
        body = await self._patiently(lambda: self._states.get(behavior), f"state of {behavior}")
        state = body.get("state", body)
        wo = await self._current_work_order(behavior, _int_or_none(state.get("version")))
        timeout_class = wo.preset.timeout_class or "fast"
        return Binding(
            behavior=behavior,
            tier=Tier(state["tier"]),
            status=Status(state["status"]),
            preset_version=_int_or_none(state.get("preset_version")),
            key_ref=wo.key.ref,
            stage_expiry_hours=wo.stage_expiry_hours,
            step_timeout_seconds=STEP_TIMEOUT_SECONDS[timeout_class],
        )

    @activity.defn(name="run_step")
    async def run_step(self, request: StepRequest) -> Checked:
        """Read the behavior's binding as of now and, when it is active, run its step code with
        its bound model and then every gate on what it produced, within its timeout class.

        The binding is read here, at the step, so a demotion recorded before the step is seen;
        the gates run here too, so the step's output is judged where it was made rather than
        shipped back in a second activity, and a refusal becomes a gate context the gates judge
        the same way. A step past its timeout class raises a retryable ApplicationError of type
        STEP_TIMED_OUT (details: the class's seconds).
        """
        try:
            return await self._run_step(request)
        except InfrastructureError as exc:
            raise _infra(exc) from None

    async def _run_step(self, request: StepRequest) -> Checked:
        binding = await self._binding(request.behavior)
        if binding.status is not Status.ACTIVE:
            return Checked(binding)
        # read before the step's clock starts: an outage waited out here is not step time
        await self._trailing_medians(request.behavior)
        deadline = asyncio.timeout(binding.step_timeout_seconds)
        try:
            async with deadline:
                step, verdict = await self._checked_step(
                    binding, request.run_id, request.input, request.now
                )
        except TimeoutError:
            if not deadline.expired():  # the step's own TimeoutError: a failure like any other
                raise
            raise ApplicationError(
                f"the step ran past its timeout class ({binding.step_timeout_seconds:g} s)",
                binding.step_timeout_seconds,
                type=STEP_TIMED_OUT,
            ) from None
        # the completions served the gates and detectors here; the workflow needs only the sums
        step.completions = []
        return Checked(binding, step, verdict)

    @activity.defn(name="judge_failed_step")
    async def judge_failed_step(self, failed: FailedStep) -> Checked:
        """Every gate and anomaly detector on a step that failed after its retries or ran past
        its timeout class, with the binding as of now (it names the run's tier and the
        failure's timeout class)."""
        try:
            binding = await self._binding(failed.behavior)
        except InfrastructureError as exc:
            raise _infra(exc) from None
        context: dict[str, Any] = {"error": failed.error, "attempts": failed.attempts}
        if failed.timed_out:
            context |= {"timed_out": True, "error": "timed out"}
            context["timeout_s"] = binding.step_timeout_seconds
        step = StepOutput(summary=f"step failed: {context['error']}", context=context)
        return Checked(binding, step, await self._verdict(self._work_order(failed.behavior), step))

    async def _checked_step(
        self, b: Binding, run_id: str, input: Mapping[str, Any], now: Any
    ) -> tuple[StepOutput, Verdict]:
        from cleanday.gates import GateContext, prepare_input

        wo = self._work_order(b.behavior)
        step = _load_entry(wo.name, wo.entry)
        ctx = StepContext(
            behavior=b.behavior,
            tier=b.tier,
            run_id=run_id,
            input=prepare_input(wo, dict(input)),
            config=dict(wo.config),
            model=self.deps.model_for(wo, b.tier, run_id),
            data_dir=self.deps.data_dir,
            now=now,
        )
        try:
            output = _flatten(await _heartbeating(step(ctx)))
        except (GateFailure, RoutingError) as exc:
            # budget/policy refusals and exhausted routing are gate failures, not retries
            gc = GateContext.from_exception(exc, input=dict(input))
            output = redacted(StepOutput(summary=str(exc), context=_context_dict(gc)))
        except SecretResolutionError as exc:  # the deployment's secret, not the step's fault
            raise InfrastructureError("secret", str(exc)) from None
        except Exception as exc:
            # step code's own exception text goes to Temporal history, logs and the ledger
            if (clean := without_secrets(exc)) is not exc:
                raise clean from None
            raise
        return output, await self._verdict(wo, output)

    async def _verdict(self, wo: WorkOrder, step: StepOutput) -> Verdict:
        from cleanday.anomalies import Medians, RunFacts, detect
        from cleanday.gates import evaluate

        ctx = _context_from(step.context)
        result = None if step.context and step.output is None else _unflatten(step)
        report = evaluate(wo, result, ctx)
        anomalies: list[AnomalyOutcome] = []
        if result is not None and not report.blocked:
            medians = Medians.from_dict(await self._trailing_medians(wo.name))
            facts = RunFacts.from_result(result)
            anomalies = [
                AnomalyOutcome(a.name, a.detail) for a in detect(wo.anomalies, facts, medians)
            ]
        return Verdict(
            gates=[GateOutcome(g.name, g.passed, g.reason) for g in report.results],
            anomalies=anomalies,
            output=report.output,
            actions=[_action_dict(a) for a in report.actions],
        )

    @activity.defn(name="act")
    async def act(self, request: ActRequest) -> ActResult:
        """Ask the ledger for a permit now, and only with it perform the actions through the sink.

        Both halves are idempotent (the permit by run, the sink by action id), so a retry after a
        crash between them neither asks twice in effect nor acts twice.
        """
        try:
            await self.deps.ledger.request_permit(request.behavior, request.run_id, request.item_id)
        except PermitDenied as denied:
            return ActResult(acted=False, denied=str(denied))
        done: list[str] = []
        for raw in request.actions:
            action = Action(kind=raw["kind"], target=raw["target"], payload=dict(raw["payload"]))
            # sinks are synchronous file/HTTP writers; keep the event loop free for heartbeats
            done.append(await asyncio.to_thread(self.deps.sink.act, request.behavior, action))
        return ActResult(acted=True, done=done)

    @activity.defn(name="sign_off")
    async def sign_off(self, behavior: str, item_id: str) -> str:
        """Where the operator's sign-off on a proposal or staged item stands in the ledger:
        pending, approved, rejected, released, expired or acted. A waiting run asks now and then,
        so a sign-off whose wake-up signal was lost is still seen."""
        body = await self.deps.ledger.item(behavior, item_id)
        return str(body["status"])

    @activity.defn(name="act_and_report")
    async def act_and_report(self, request: ActAndReport) -> ActResult:
        """`act`, then report the run with the outcome that follows (succeeded when it acted,
        blocked when the permit was denied): one activity where a C run had two.

        The permit is still asked at the moment of acting, inside `act`; a failure there
        (ledger unavailable, sink error) fails this activity, which retries as `act` did. A
        failure of the report after the act does not: the result says `reported=False` and the
        workflow reports through report_outcome, so a retry never re-asks a permit for a run
        that already acted.
        """
        result = await self.act(request.act)
        # finished_at stays the step's: a run belongs to the day its step finished
        report = {**request.report, "outcome": SUCCEEDED if result.acted else BLOCKED}
        try:
            await self._reports.report(report)
        except Exception:  # reported by the workflow's report_outcome, which retries
            log.warning("run %s: report after acting failed", request.act.run_id, exc_info=True)
        else:
            result.reported = True
        return result

    @activity.defn(name="report_outcome")
    async def report_outcome(self, report: dict[str, Any]) -> bool:
        """Report the run to the ledger; True the first time, False for a repeat (counted once).
        A behavior retired while the run ran takes no report: that is final, not retried."""
        try:
            first, _ = await self.deps.ledger.report_run(report)
        except BehaviorRetired as exc:
            raise _final(exc) from None
        except RunConflict as exc:
            if not exc.fields or not set(exc.fields) <= _CLOCK_READINGS:
                raise _final(exc) from None  # another run under this ID: a retry changes nothing
            log.info(
                "run %s: already recorded by an earlier attempt (%s differ: that attempt's "
                "workflow task was lost with its worker); the ledger keeps the first report",
                report.get("run_id"), ", ".join(exc.fields),
            )  # fmt: skip
            return False
        return first

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        return [
            self.run_step,
            self.judge_failed_step,
            self.act,
            self.act_and_report,
            self.sign_off,
            self.report_outcome,
        ]


async def _heartbeating(work: Awaitable[StepResult], every: float = 2.0) -> StepResult:
    """Await the step while telling Temporal the worker is alive, so a dead worker's step is
    retried after the heartbeat timeout rather than after the whole timeout class."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()  # a no-op once done; stops the step when the activity is cancelled


_UNKNOWN_FINISH = datetime.min.replace(tzinfo=UTC)

# A run's report reads the workflow's clock (`workflow.now()`), which Temporal records only
# when the workflow task completes. A worker that dies after a local activity reported the run
# but before its task completed leaves no record of that reading: the task runs again elsewhere
# with a later clock, and its report differs from the recorded one in these fields alone. It is
# the same run, already counted.
_CLOCK_READINGS = frozenset({"started_at", "finished_at"})


def _finished_at(report: Mapping[str, Any]) -> datetime:
    at = report.get("finished_at")
    return datetime.fromisoformat(at) if at else _UNKNOWN_FINISH


def _final(exc: Exception) -> ApplicationError:
    """An activity failure Temporal does not retry: the ledger's answer will not change."""
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True)


def _infra(exc: InfrastructureError) -> ApplicationError:
    """The activity failure of an infrastructure error: not retried by Temporal (the ledger
    reads already waited out the outage), reported by the workflow as infra_error."""
    return ApplicationError(str(exc), exc.kind, type=INFRA_ERROR_TYPE, non_retryable=True)


def _load_entry(behavior: str, entry: str) -> Callable[[StepContext], Awaitable[StepResult]]:
    """The step function, its module imported on first use (cleanday.entrypoints)."""
    try:
        fn: Callable[[StepContext], Awaitable[StepResult]] = entrypoints.load(entry)
    except ConfigError as exc:
        raise InfrastructureError(
            "step_code",
            f"behavior {behavior}: this worker cannot load its step code: {exc}; put the module "
            "in the behaviors directory (CLEANDAY_BEHAVIORS_DIR) or install it where the worker "
            "runs, then reload the worker",
        ) from None
    return fn


def _int_or_none(v: Any) -> int | None:
    return int(v) if v is not None else None


def _action_dict(a: Action) -> dict[str, Any]:
    return {"kind": a.kind, "target": a.target, "payload": dict(a.payload)}


def _flatten(result: StepResult) -> StepOutput:
    calls = result.completions
    return StepOutput(
        output=result.output,
        summary=result.summary,
        actions=[_action_dict(a) for a in result.actions],
        completions=[dataclasses.asdict(c) for c in calls],
        metrics=dict(result.metrics),
        cost_usd=sum(c.cost_usd for c in calls),
        tokens_in=sum(c.tokens_in for c in calls),
        tokens_out=sum(c.tokens_out for c in calls),
        model=calls[-1].model if calls else None,
        transport=calls[-1].transport if calls else None,
        latency_ms=sum(c.latency_ms for c in calls) if calls else None,
        fell_back=any(c.fell_back for c in calls),
    )


def _unflatten(step: StepOutput) -> StepResult:
    completions = [
        Completion(
            **{k: v for k, v in c.items() if k != "attempts"},
            attempts=tuple(Attempt(**a) for a in c.get("attempts", ())),
        )
        for c in step.completions
    ]
    return StepResult(
        output=step.output if step.output is not None else "",
        summary=step.summary,
        actions=[Action(a["kind"], a["target"], dict(a["payload"])) for a in step.actions],
        metrics=dict(step.metrics),
        completions=completions,
    )


def _context_dict(gc: Any) -> dict[str, Any]:
    return dataclasses.asdict(gc)  # type: ignore[no-any-return]


def _context_from(data: dict[str, Any] | None) -> Any:
    from cleanday.gates import GateContext, Refusal

    if not data:
        return GateContext()
    fields = dict(data)
    refusal = fields.pop("refusal", None)
    return GateContext(refusal=Refusal(**refusal) if refusal else None, **fields)
