"""Gates: the blocking checks every run passes through before it may act.

    from cleanday.gates import GateContext, evaluate
    report = evaluate(work_order, result, GateContext())          # a run that finished
    # a run that ended with an exception instead of a result:
    report = evaluate(work_order, None, GateContext.from_exception(exc, attempts=3))
    report.results  -> list[cleanday.domain.GateResult]  (name, passed, reason), in order
    report.output   -> the output after redaction (what the act step and the report may use)
    report.actions  -> the step's actions, payloads redacted likewise: act on these ones
    report.blocked  -> True when any gate failed: the run must not act
    report.as_dicts() -> the `gates` list of a RunReport

Which gates run: budget, policy and failure always, then the Work Order's `gates` in the order
declared (a Work Order that lists budget/policy/failure itself only adds options to them).
Each built-in gate is one module here (budget, policy, sensitive_info, schema, failure); a gate
with `entry: module:function` is a custom gate (see `cleanday.gates.custom`). Pure functions:
no I/O, no clock; safe to call from a Temporal activity.
"""

from __future__ import annotations

from cleanday.domain import GateResult
from cleanday.gates import budget, custom, failure, policy, schema, sensitive_info
from cleanday.gates.base import GateCheck, GateContext, GateReport, Output, Refusal, Verdict
from cleanday.gates.sensitive_info import redact_input
from cleanday.steps import Action, StepResult
from cleanday.workorder import GateSpec, WorkOrder

__all__ = [
    "ALWAYS",
    "GateContext",
    "GateReport",
    "Refusal",
    "evaluate",
    "gate_plan",
    "prepare_input",
]

ALWAYS = ("budget", "policy", "failure")


def gate_plan(work_order: WorkOrder) -> list[GateSpec]:
    """The gates that run for this Work Order, in order."""
    declared = {g.name: g for g in work_order.gates}
    plan = [declared.get(name, GateSpec(name=name)) for name in ALWAYS]
    plan += [g for g in work_order.gates if g.name not in ALWAYS]
    return plan


def _run_one(spec: GateSpec, work_order: WorkOrder, c: GateCheck) -> Verdict:
    if spec.entry:
        return custom.check(c, spec.entry)
    if spec.name == budget.NAME:
        return budget.check(c)
    if spec.name == policy.NAME:
        return policy.check(c, work_order)
    if spec.name == failure.NAME:
        return failure.check(c)
    if spec.name == sensitive_info.NAME:
        return sensitive_info.check(c)
    if spec.name == schema.NAME:
        return schema.check(c, work_order)
    return Verdict(
        False,
        f"unknown gate {spec.name}: use one of budget, policy, sensitive_info, schema, failure, "
        "or give it an entry 'module:function'",
    )


def evaluate(work_order: WorkOrder, result: StepResult | None, ctx: GateContext) -> GateReport:
    """Run every gate of `work_order` on one run; see the module docstring."""
    output: Output = result.output if result is not None else None
    actions: tuple[Action, ...] = tuple(result.actions) if result is not None else ()
    results: list[GateResult] = []
    redacted = False
    for spec in gate_plan(work_order):
        check = GateCheck(
            output=output,
            result=result,
            context=ctx,
            options=dict(spec.options),
            mode=spec.mode,
            actions=actions,
        )
        verdict = _run_one(spec, work_order, check)
        if verdict.redacted:
            output = verdict.output
            if verdict.actions is not None:
                actions = verdict.actions
            redacted = True
        results.append(GateResult(spec.name, verdict.passed, verdict.reason))
    return GateReport(
        results=results,
        output=output,
        blocked=any(not r.passed for r in results),
        redacted=redacted,
        actions=actions,
    )


def prepare_input(work_order: WorkOrder, input: dict[str, object]) -> dict[str, object]:
    """The run's input as the step should see it: redacted when a redact-mode
    sensitive_info gate scans the input (so the model never sees what it would leak)."""
    for spec in work_order.gates:
        if (
            spec.name == sensitive_info.NAME
            and spec.mode == "redact"
            and spec.options.get("scan_input")
        ):
            return redact_input(spec.options, dict(input))
    return input
