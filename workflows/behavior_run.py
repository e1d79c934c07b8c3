"""The behavior run: one workflow type runs every behavior, its tier deciding what happens."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from cleanday.runtime.activities import (
        STEP_CEILING_SECONDS,
        STEP_TIMED_OUT,
        RuntimeActivities,
    )
    from cleanday.runtime.types import (
        BLOCKED,
        EXPIRED,
        FAILED,
        PROPOSED,
        STAGED,
        SUCCEEDED,
        ActAndReport,
        ActRequest,
        Binding,
        BoundChecked,
        BoundStepRequest,
        Checked,
        GateRequest,
        RunRequest,
        RunState,
        StepOutput,
        StepRequest,
        Verdict,
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
_POLL_SIGN_OFF = "poll-sign-off"
_POLL_FIRST = timedelta(minutes=1)
_POLL_MAX = timedelta(minutes=15)
# Runs started since this patch read their binding in the step's activity (run_bound_step)
# and, at C and Wings, act and report in one local activity (act_and_report). Runs whose
# history began before it replay the earlier sequence: load_binding, run_step, act, report.
_FUSED = "bound-step-and-act-report"


@workflow.defn(name="BehaviorRun")
class BehaviorRun:
    def __init__(self) -> None:
        self._state = RunState()
        self._decision: str | None = None  # "approved" | "rejected" | "released"

    @workflow.run
    async def run(self, request: RunRequest) -> RunState:
        s, run_id = self._state, workflow.info().workflow_id
        s.behavior, started = request.behavior, workflow.now()

        fused = workflow.patched(_FUSED)
        if fused:
            s.phase = "running step"  # the binding, the step, every gate: one activity
            bound = await self._run_bound_step(run_id, request)
            if bound is None:
                s.phase, s.outcome = "done", "skipped"
                return s
            binding, step, verdict = bound
        else:
            s.phase = "loading binding"
            binding = await self._load_binding(request.behavior)
            if binding.status != "active":
                s.phase, s.outcome = "done", "skipped"
                return s
            s.phase = "running step"  # and then every gate on its output, in the same activity
            step, verdict = await self._run_step(binding, run_id, request)
        s.summary = step.summary
        s.gates, s.anomalies, s.output = verdict.gates, verdict.anomalies, verdict.output
        step.actions = verdict.actions  # act on what the gates let through (redacted if need be)

        if not verdict.passed:
            await self._report(binding, run_id, started, step, FAILED if step.context else BLOCKED)
        elif binding.tier == "A":
            await self._report(binding, run_id, started, step, PROPOSED)
            s.phase, s.waiting_for = "waiting", "batch approval"
            await self._await_sign_off(request.behavior, run_id, ("approved", "rejected"), None)
            if self._decision == "approved":
                await self._act(binding, run_id, step, item_id=run_id)
        elif binding.tier == "B":
            await self._report(binding, run_id, started, step, STAGED)
            s.phase, s.waiting_for = "waiting", "release"
            expiry = timedelta(hours=binding.stage_expiry_hours)
            if await self._await_sign_off(request.behavior, run_id, ("released",), expiry):
                await self._act(binding, run_id, step, item_id=run_id)
            else:
                s.outcome = EXPIRED  # no penalty: the ledger already has this run as staged
        elif fused:  # C and Wings: the permit is asked at the moment of acting
            await self._act_and_report(binding, run_id, started, step)
        else:
            await self._act(binding, run_id, step, item_id=None)
            await self._report(binding, run_id, started, step, SUCCEEDED if s.acted else BLOCKED)
        s.phase, s.waiting_for = "done", None
        return s

    @workflow.signal
    def approve(self) -> None:
        self._decision = self._state.decision = self._decision or "approved"

    @workflow.signal
    def reject(self, reason: str) -> None:
        self._decision = self._state.decision = self._decision or "rejected"

    @workflow.signal
    def release(self) -> None:
        self._decision = self._state.decision = self._decision or "released"

    @workflow.query
    def state(self) -> RunState:
        return self._state

    async def _await_sign_off(
        self, behavior: str, item_id: str, wanted: tuple[str, ...], expiry: timedelta | None
    ) -> bool:
        """Wait for the operator's sign-off; False if `expiry` passed first.

        The relay's signal wakes the run at once. In case a signal was lost (Temporal down when
        the operator signed off, a CLI that could not reach it), the run also asks the ledger,
        first after a minute, then at doubling intervals up to every 15 minutes.
        """
        decided = lambda: self._decision in wanted  # noqa: E731
        if not workflow.patched(_POLL_SIGN_OFF):  # a run started before the ledger was polled
            try:
                await workflow.wait_condition(decided, timeout=expiry)
                return True
            except TimeoutError:  # wait_condition raises the builtin one
                return False
        deadline = workflow.now() + expiry if expiry is not None else None
        every = _POLL_FIRST
        while True:
            wait = every if deadline is None else min(every, deadline - workflow.now())
            if wait <= timedelta(0):
                return False
            try:
                await workflow.wait_condition(decided, timeout=wait)
                return True
            except TimeoutError:
                pass
            status = await workflow.execute_local_activity_method(
                RuntimeActivities.sign_off, args=[behavior, item_id], start_to_close_timeout=_LEDGER
            )
            if status in wanted:
                self._decision = self._state.decision = status
                return True
            if status == "expired":
                return False
            every = min(every * 2, _POLL_MAX)

    async def _load_binding(self, behavior: str) -> Binding:
        binding: Binding = await workflow.execute_local_activity_method(
            RuntimeActivities.load_binding, behavior, start_to_close_timeout=_LEDGER
        )
        self._state.tier = binding.tier
        return binding

    async def _run_bound_step(
        self, run_id: str, request: RunRequest
    ) -> tuple[Binding, StepOutput, Verdict] | None:
        """The binding, the step and its verdict; None when the behavior is not active."""
        try:
            bound: BoundChecked = await workflow.execute_activity_method(
                RuntimeActivities.run_bound_step,
                BoundStepRequest(request.behavior, run_id, request.input, workflow.now()),
                # the activity holds the step to its timeout class; this is the ceiling
                start_to_close_timeout=timedelta(seconds=STEP_CEILING_SECONDS),
                heartbeat_timeout=_STEP_HEARTBEAT,
                retry_policy=_STEP_RETRY,
            )
        except ActivityError as err:
            # the step failed after its retry policy, or ran past its timeout class: the
            # binding as of now names the run's tier and the failure's timeout class
            binding = await self._load_binding(request.behavior)
            step, verdict = await self._judge_failure(binding, run_id, err)
            return binding, step, verdict
        self._state.tier = bound.binding.tier
        if bound.checked is None:
            return None
        return bound.binding, bound.checked.step, bound.checked.verdict

    async def _run_step(
        self, binding: Binding, run_id: str, request: RunRequest
    ) -> tuple[StepOutput, Verdict]:
        try:
            checked: Checked = await workflow.execute_activity_method(
                RuntimeActivities.run_step,
                StepRequest(binding, run_id, request.input, workflow.now()),
                start_to_close_timeout=timedelta(seconds=binding.step_timeout_seconds),
                heartbeat_timeout=_STEP_HEARTBEAT,
                retry_policy=_STEP_RETRY,
            )
            return checked.step, checked.verdict
        except ActivityError as err:
            return await self._judge_failure(binding, run_id, err)

    async def _judge_failure(
        self, binding: Binding, run_id: str, err: ActivityError
    ) -> tuple[StepOutput, Verdict]:
        # the step failed after its retry policy, or ran past its timeout class
        cause = err.cause
        if isinstance(cause, ActivityTimeout) or (
            isinstance(cause, ApplicationError) and cause.type == STEP_TIMED_OUT
        ):
            context = {"timed_out": True, "error": "timed out", "attempts": 1}
            context["timeout_s"] = binding.step_timeout_seconds
        else:
            context = {"error": str(cause), "attempts": _STEP_RETRY.maximum_attempts}
        # no verdict came back with the step: the gates judge its failure here
        self._state.phase = "checking gates"
        step = StepOutput(summary=f"step failed: {context['error']}", context=context)
        verdict: Verdict = await workflow.execute_local_activity_method(
            RuntimeActivities.check_gates,
            GateRequest(binding, run_id, step, _ms_since(workflow.info().start_time)),
            start_to_close_timeout=_LEDGER,
        )
        return step, verdict

    async def _act(
        self, binding: Binding, run_id: str, step: StepOutput, item_id: str | None
    ) -> None:
        s = self._state
        s.phase, s.waiting_for = "acting", None
        result = await workflow.execute_local_activity_method(
            RuntimeActivities.act,
            ActRequest(binding.behavior, run_id, item_id, step.actions),
            start_to_close_timeout=_LEDGER,
        )
        s.acted, s.denied = result.acted, result.denied

    async def _act_and_report(
        self, binding: Binding, run_id: str, started: datetime, step: StepOutput
    ) -> None:
        s = self._state
        s.phase, s.waiting_for = "acting", None
        report = build_report(binding, run_id, started, workflow.now(), step, s)
        result = await workflow.execute_local_activity_method(
            RuntimeActivities.act_and_report,
            ActAndReport(ActRequest(binding.behavior, run_id, None, step.actions), report),
            start_to_close_timeout=_LEDGER,
        )
        s.acted, s.denied = result.acted, result.denied
        if result.reported:
            s.outcome = SUCCEEDED if s.acted else BLOCKED
        else:  # the ledger did not take the report after the act: report until it does
            await self._report(binding, run_id, started, step, SUCCEEDED if s.acted else BLOCKED)

    async def _report(
        self, binding: Binding, run_id: str, started: datetime, step: StepOutput, outcome: str
    ) -> None:
        s = self._state
        s.phase, s.outcome = "reporting", outcome
        await workflow.execute_local_activity_method(
            RuntimeActivities.report_outcome,
            build_report(binding, run_id, started, workflow.now(), step, s),
            start_to_close_timeout=_LEDGER,
        )


def _ms_since(started: datetime) -> float:
    return (workflow.now() - started).total_seconds() * 1000.0
