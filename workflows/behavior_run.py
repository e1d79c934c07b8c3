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
    from cleanday.runtime.activities import (
        STEP_CEILING_SECONDS,
        STEP_TIMED_OUT,
        RuntimeActivities,
    )
    from cleanday.runtime.types import (
        APPROVED,
        BLOCKED,
        EXPIRED,
        FAILED,
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
        build_report,
    )

# Ledger calls are cheap and idempotent: retry them until the ledger answers. A short timeout
# lets a run recover quickly when its worker dies mid-call.
_LEDGER = timedelta(seconds=10)
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


@workflow.defn(name="BehaviorRun")
class BehaviorRun:
    def __init__(self) -> None:
        self._state = RunState()
        self._decision: str | None = None  # APPROVED | REJECTED | RELEASED, the first one wins

    @workflow.run
    async def run(self, request: RunRequest) -> RunState:
        s, run_id, started = self._state, workflow.info().workflow_id, workflow.now()
        s.behavior, s.phase = request.behavior, "running step"
        # one activity: the binding as of now (tier, status), the step's model calls, every gate
        checked = await self._run_step(request, run_id)
        binding, step, verdict = checked.binding, checked.step, checked.verdict
        s.tier = binding.tier
        if step is None or verdict is None:  # paused, quarantined or retired: nothing ran
            s.phase, s.outcome = "done", SKIPPED
            return s
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

    async def _run_step(self, request: RunRequest, run_id: str) -> Checked:
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
            cause = err.cause
            timed_out = isinstance(cause, ActivityTimeout) or (
                isinstance(cause, ApplicationError) and cause.type == STEP_TIMED_OUT
            )
            attempts = 1 if timed_out else _STEP_RETRY.maximum_attempts
            self._state.phase = "checking gates"  # no verdict came back: the gates judge here
            return await workflow.execute_local_activity_method(
                RuntimeActivities.judge_failed_step,
                FailedStep(request.behavior, run_id, str(cause), attempts, timed_out),
                start_to_close_timeout=_LEDGER,
            )

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
