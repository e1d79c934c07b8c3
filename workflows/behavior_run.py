"""The behavior run: one workflow type runs every behavior, its tier deciding what happens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from cleanday.domain import Tier
    from cleanday.runtime import search
    from cleanday.runtime.activities import (
        INFRA_ERROR_TYPE,
        STEP_CEILING_SECONDS,
        STEP_TIMED_OUT,
        RuntimeActivities,
    )
    from cleanday.runtime.types import (
        APPROVED,
        BLOCKED,
        EXPIRED,
        FAILED,
        INFRA_ERROR,
        PROPOSED,
        REJECTED,
        RELEASED,
        SKIPPED,
        STAGED,
        SUCCEEDED,
        ActAndReport,
        ActRequest,
        Binding,
        Checked,
        FailedStep,
        RunRequest,
        RunState,
        StepOutput,
        StepRequest,
        build_infra_report,
        build_report,
    )

# Ledger calls are cheap and idempotent: retry them until the ledger answers. A short timeout
# lets a run recover quickly when its worker dies mid-call.
_LEDGER = timedelta(seconds=10)
# judging a failed step reads the ledger, which may wait out an outage (the activity's own
# retry limit, CLEANDAY_LEDGER_RETRY_SECONDS, bounds it; this is the ceiling above it)
_JUDGE = timedelta(seconds=STEP_CEILING_SECONDS)
# The step heartbeats; a step whose worker died is retried elsewhere after this, not after its
# whole timeout class.
_STEP_HEARTBEAT = timedelta(seconds=10)
_STEP_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
# A waiting run asks the ledger for its sign-off now and then, in case the wake-up was lost.
_POLL_FIRST = timedelta(minutes=1)
_POLL_MAX = timedelta(minutes=15)


@dataclass(frozen=True)
class _Run:
    """A run whose step finished: what its act and its report need."""

    binding: Binding
    run_id: str
    started: datetime
    finished: datetime  # when the step finished: the run belongs to this day, however late
    step: StepOutput

    def act(self, item_id: str | None) -> ActRequest:
        return ActRequest(self.binding.behavior, self.run_id, item_id, self.step.actions)

    def report(self, state: RunState) -> dict[str, Any]:
        return build_report(
            self.binding, self.run_id, self.started, self.finished, self.step, state
        )


@dataclass(frozen=True)
class _Infra:
    """The deployment kept the step from running (an InfrastructureError in an activity)."""

    kind: str
    reason: str


def _infra_of(err: ActivityError) -> _Infra | None:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == INFRA_ERROR_TYPE:
        kind = str(cause.details[0]) if cause.details else "unknown"
        return _Infra(kind, cause.message)
    return None


def _what_happened(s: RunState) -> str:
    failed = [f"{g.name} ({g.reason})" if g.reason else g.name for g in s.gates if not g.passed]
    parts = [f"**{s.outcome}**" + (f" at tier {s.tier.value}" if s.tier else "")]
    if failed:
        parts.append("gate failed: " + "; ".join(failed))
    if s.summary:
        parts.append(s.summary)
    if s.acted:
        parts.append("acted with the ledger's permit")
    elif s.denied:
        parts.append(f"not acted: {s.denied}")
    if s.decision:
        parts.append(f"operator: {s.decision}")
    return " · ".join(parts)


@workflow.defn(name="BehaviorRun")
class BehaviorRun:
    def __init__(self) -> None:
        self._state = RunState()
        self._tagged = False
        self._decision: str | None = None  # APPROVED | REJECTED | RELEASED, the first one wins

    @workflow.run
    async def run(self, request: RunRequest) -> RunState:
        s, run_id, started = self._state, workflow.info().workflow_id, workflow.now()
        s.behavior, s.phase = request.behavior, "running step"
        self._tagged = request.search_attributes
        self._tag(search.BEHAVIOR.value_set(request.behavior))
        # one activity: the binding as of now (tier, status), the step's model calls, every gate
        checked = await self._run_step(request, run_id)
        if isinstance(checked, _Infra):  # not the behavior's fault: no gate ran, none failed
            await self._report_infra(request.behavior, run_id, started, checked)
            return self._done()
        binding, step, verdict = checked.binding, checked.step, checked.verdict
        s.tier = binding.tier
        self._tag(search.TIER.value_set(binding.tier.value))
        if step is None or verdict is None:  # paused, quarantined or retired: nothing ran
            s.phase, s.outcome = "done", SKIPPED
            s.summary = f"{binding.behavior} is {binding.status.value}: nothing ran"
            return self._done()
        s.summary, s.output = step.summary, verdict.output
        s.gates, s.anomalies = verdict.gates, verdict.anomalies
        step.actions = verdict.actions  # what the gates let through (redacted if need be)
        run = _Run(binding, run_id, started, workflow.now(), step)  # finished: now

        if not verdict.passed:
            await self._report(run, FAILED if step.context else BLOCKED)
        elif binding.tier is Tier.A:  # propose; act once the operator approves the batch
            await self._report(run, PROPOSED)
            if await self._sign_off("batch approval", (APPROVED, REJECTED), None) == APPROVED:
                await self._act(run.act(item_id=run_id))
        elif binding.tier is Tier.B:  # stage; act once the operator releases it
            await self._report(run, STAGED)
            expiry = timedelta(hours=binding.stage_expiry_hours)
            if await self._sign_off("release", (RELEASED,), expiry) == RELEASED:
                await self._act(run.act(item_id=run_id))
            else:
                s.outcome = EXPIRED  # no penalty: the ledger already has this run as staged
        else:  # C and Wings: the permit is asked at the moment of acting
            await self._act_and_report(run)
        s.phase, s.waiting_for = "done", None
        return self._done()

    def _tag(self, *updates: Any) -> None:
        if self._tagged:
            workflow.upsert_search_attributes(list(updates))

    def _done(self) -> RunState:
        """Say in the Temporal UI what happened (the outcome as a search attribute, and in the
        run's details), so a gate-failed run does not read as a plain COMPLETED."""
        s = self._state
        s.phase = "done"
        self._tag(search.OUTCOME.value_set(s.outcome or "unknown"))
        workflow.set_current_details(_what_happened(s))
        return s

    @workflow.signal
    def approve(self) -> None:
        self._decide(APPROVED)

    @workflow.signal
    def reject(self, reason: str) -> None:
        self._decide(REJECTED)

    @workflow.signal
    def release(self) -> None:
        self._decide(RELEASED)

    @workflow.query
    def state(self) -> RunState:
        return self._state

    def _decide(self, decision: str) -> None:
        self._decision = self._state.decision = self._decision or decision

    async def _sign_off(
        self, waiting_for: str, wanted: tuple[str, ...], expiry: timedelta | None
    ) -> str | None:
        """Wait for the operator's sign-off, one of `wanted`; None if `expiry` passed first.

        A signal (sent once the sign-off is in the ledger) wakes the run at once. In case it was
        lost (Temporal down when the operator signed off, a CLI that could not reach it), the
        run also asks the ledger, first after a minute, then at doubling intervals up to every
        15 minutes. Whatever wakes it, the act still needs the ledger's permit.
        """
        s = self._state
        s.phase, s.waiting_for = "waiting", waiting_for
        deadline = workflow.now() + expiry if expiry is not None else None
        every = _POLL_FIRST
        while True:
            wait = every if deadline is None else min(every, deadline - workflow.now())
            if wait <= timedelta(0):
                return None
            try:
                await workflow.wait_condition(lambda: self._decision in wanted, timeout=wait)
                return self._decision
            except TimeoutError:  # wait_condition raises the builtin one
                pass
            status = await workflow.execute_local_activity_method(
                RuntimeActivities.sign_off,
                args=[s.behavior, workflow.info().workflow_id],
                start_to_close_timeout=_LEDGER,
            )
            if status in wanted:
                self._decision = s.decision = status
                return status
            if status == EXPIRED:
                return None
            every = min(every * 2, _POLL_MAX)

    async def _run_step(self, request: RunRequest, run_id: str) -> Checked | _Infra:
        try:
            return await workflow.execute_activity_method(
                RuntimeActivities.run_step,
                StepRequest(request.behavior, run_id, request.input, workflow.now()),
                # the activity holds the step to its timeout class; this is the ceiling
                start_to_close_timeout=timedelta(seconds=STEP_CEILING_SECONDS),
                heartbeat_timeout=_STEP_HEARTBEAT,
                retry_policy=_STEP_RETRY,
            )
        except ActivityError as err:  # failed after its retry policy, or past its timeout class
            if (infra := _infra_of(err)) is not None:
                return infra
            cause = err.cause
            timed_out = isinstance(cause, ActivityTimeout) or (
                isinstance(cause, ApplicationError) and cause.type == STEP_TIMED_OUT
            )
            attempts = 1 if timed_out else _STEP_RETRY.maximum_attempts
            self._state.phase = "checking gates"  # no verdict came back: the gates judge here
            try:
                return await workflow.execute_local_activity_method(
                    RuntimeActivities.judge_failed_step,
                    FailedStep(request.behavior, run_id, str(cause), attempts, timed_out),
                    start_to_close_timeout=_JUDGE,
                )
            except ActivityError as judge_err:
                if (infra := _infra_of(judge_err)) is not None:
                    return infra
                raise

    async def _report_infra(
        self, behavior: str, run_id: str, started: datetime, infra: _Infra
    ) -> None:
        """Report the run as an infrastructure error: the ledger records it, alerts the
        operator, and counts it neither as a clean day nor as a break."""
        s = self._state
        s.phase, s.outcome, s.infra, s.summary = "reporting", INFRA_ERROR, infra.kind, infra.reason
        report = build_infra_report(
            behavior, run_id, started, workflow.now(), infra.kind, infra.reason
        )
        await workflow.execute_local_activity_method(
            RuntimeActivities.report_outcome, report, start_to_close_timeout=_LEDGER
        )
        s.phase = "done"

    async def _act(self, request: ActRequest) -> None:
        s = self._state
        s.phase, s.waiting_for = "acting", None
        result = await workflow.execute_local_activity_method(
            RuntimeActivities.act, request, start_to_close_timeout=_LEDGER
        )
        s.acted, s.denied = result.acted, result.denied

    async def _act_and_report(self, run: _Run) -> None:
        s = self._state
        s.phase, s.waiting_for = "acting", None
        result = await workflow.execute_local_activity_method(
            RuntimeActivities.act_and_report,
            ActAndReport(run.act(item_id=None), run.report(s)),
            start_to_close_timeout=_LEDGER,
        )
        s.acted, s.denied = result.acted, result.denied
        if result.reported:
            s.outcome = SUCCEEDED if s.acted else BLOCKED
        else:  # the ledger did not take the report after the act: report until it does
            await self._report(run, SUCCEEDED if s.acted else BLOCKED)

    async def _report(self, run: _Run, outcome: str) -> None:
        s = self._state
        s.phase, s.outcome = "reporting", outcome
        await workflow.execute_local_activity_method(
            RuntimeActivities.report_outcome, run.report(s), start_to_close_timeout=_LEDGER
        )
