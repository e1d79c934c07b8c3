from __future__ import annotations

from typing import Any

import pytest

from cleanday.errors import BudgetExceeded, PolicyViolation, RateLimited
from cleanday.gates import GateContext, evaluate, gate_plan, prepare_input
from cleanday.router.types import Attempt
from cleanday.steps import Action, StepResult
from tests.unit.fakes import completion, work_order


def result(output: str | dict[str, Any] = "all good", **kw: Any) -> StepResult:
    kw.setdefault("completions", [completion()])
    return StepResult(output=output, summary="done", **kw)


def by_name(report: Any) -> dict[str, Any]:
    return {r.name: r for r in report.results}


# which gates run


def test_budget_policy_and_failure_always_run_before_the_declared_gates() -> None:
    wo = work_order(gates=[{"name": "schema"}, {"name": "sensitive_info"}])
    assert [g.name for g in gate_plan(wo)] == [
        "budget",
        "policy",
        "failure",
        "schema",
        "sensitive_info",
    ]


def test_a_declared_always_gate_adds_its_options_without_running_twice() -> None:
    wo = work_order(gates=[{"name": "policy", "options": {"check_models": False}}])
    plan = gate_plan(wo)
    assert [g.name for g in plan] == ["budget", "policy", "failure"]
    assert plan[1].options == {"check_models": False}


def test_a_clean_run_passes_every_gate_and_is_not_blocked() -> None:
    report = evaluate(work_order(), result(), GateContext())
    assert not report.blocked
    assert all(r.passed for r in report.results)
    assert report.output == "all good"
    assert [d["name"] for d in report.as_dicts()] == ["budget", "policy", "failure"]


def test_an_unknown_gate_without_an_entry_fails_and_says_what_to_use() -> None:
    wo = work_order(gates=[{"name": "vibes"}])
    report = evaluate(wo, result(), GateContext())
    assert report.blocked
    assert "unknown gate vibes" in by_name(report)["vibes"].reason


# budget


def test_budget_gate_reports_the_routers_refusal_before_any_call() -> None:
    exc = BudgetExceeded("spend $4.99 + estimate $0.02 would pass the cap $5.00")
    report = evaluate(work_order(), None, GateContext.from_exception(exc))
    gates = by_name(report)
    assert report.blocked
    assert not gates["budget"].passed
    assert "would pass the cap $5.00" in gates["budget"].reason
    # a refusal is not a run failure: only the budget gate fails
    assert gates["policy"].passed and gates["failure"].passed


def test_budget_gate_fails_when_a_provider_answered_402_even_if_a_fallback_answered() -> None:
    c = completion(
        fell_back=True,
        transport="anthropic",
        attempts=[
            Attempt("openrouter", "anthropic/claude-haiku-4.5", 402, "payment required"),
            Attempt("anthropic", "anthropic/claude-haiku-4.5", 200),
        ],
    )
    wo = work_order(transports={"order": ["openrouter", "anthropic"]})
    report = evaluate(wo, result(completions=[c]), GateContext())
    assert not by_name(report)["budget"].passed
    assert "402" in by_name(report)["budget"].reason
    assert "openrouter" in by_name(report)["budget"].reason


def test_budget_gate_can_allow_a_402_that_fell_back() -> None:
    c = completion(attempts=[Attempt("local", "m", 402), Attempt("local", "m", 200)])
    wo = work_order(gates=[{"name": "budget", "options": {"allow_402_fallback": True}}])
    assert by_name(evaluate(wo, result(completions=[c]), GateContext()))["budget"].passed


# policy


def test_policy_gate_reports_the_routers_policy_violation() -> None:
    exc = PolicyViolation("image generation is only allowed on route images-safe")
    report = evaluate(work_order(), None, GateContext.from_exception(exc))
    gate = by_name(report)["policy"]
    assert not gate.passed and "images-safe" in gate.reason
    assert by_name(report)["budget"].passed


def test_policy_gate_fails_a_transport_the_work_order_does_not_grant() -> None:
    c = completion(transport="openrouter")
    report = evaluate(work_order(), result(completions=[c]), GateContext())
    gate = by_name(report)["policy"]
    assert not gate.passed
    assert "transport openrouter is not granted" in gate.reason


def test_policy_gate_fails_a_blocked_model() -> None:
    wo = work_order(guardrails={"blocked_models": ["openai/gpt-4o-mini"]})
    c = completion(model="openai/gpt-4o-mini")
    gate = by_name(evaluate(wo, result(completions=[c]), GateContext()))["policy"]
    assert not gate.passed and "blocked" in gate.reason


def test_policy_gate_fails_a_model_the_preset_does_not_name() -> None:
    c = completion(model="somevendor/other-model")
    gate = by_name(evaluate(work_order(), result(completions=[c]), GateContext()))["policy"]
    assert not gate.passed
    assert "somevendor/other-model is neither the preset's model" in gate.reason


def test_policy_gate_accepts_a_dated_variant_of_the_preset_model() -> None:
    c = completion(model="claude-haiku-4.5-20251001", transport="local")
    assert by_name(evaluate(work_order(), result(completions=[c]), GateContext()))["policy"].passed


def test_policy_gate_fails_a_provider_outside_the_allowed_list() -> None:
    wo = work_order(guardrails={"allowed_providers": ["anthropic"]})
    c = completion(model="openai/gpt-4o-mini")
    gate = by_name(evaluate(wo, result(completions=[c]), GateContext()))["policy"]
    assert not gate.passed and "provider openai" in gate.reason


# failure


def test_failure_gate_fails_a_run_that_failed_after_its_retries() -> None:
    ctx = GateContext.from_exception(ConnectionError("local provider refused"), attempts=3)
    gate = by_name(evaluate(work_order(), None, ctx))["failure"]
    assert not gate.passed
    assert gate.reason == "run failed after 3 attempts: ConnectionError: local provider refused"


def test_three_429s_are_a_documented_failure() -> None:
    ctx = GateContext.from_exception(RateLimited("429 three times on local"))
    report = evaluate(work_order(), None, ctx)
    gate = by_name(report)["failure"]
    assert report.blocked
    assert not gate.passed
    assert "3 consecutive 429" in gate.reason


def test_two_429s_then_success_is_not_a_failure() -> None:
    c = completion(attempts=[Attempt("local", "m", 429), Attempt("local", "m", 429)])
    assert by_name(evaluate(work_order(), result(completions=[c]), GateContext(rate_limited=2)))[
        "failure"
    ].passed


def test_failure_gate_names_the_timeout_class_a_run_ran_out_of() -> None:
    ctx = GateContext.from_exception(
        TimeoutError("step exceeded"), timeout_class="fast", timeout_s=30
    )
    gate = by_name(evaluate(work_order(), None, ctx))["failure"]
    assert not gate.passed
    assert gate.reason == "run timed out in its timeout class fast (30 s): step exceeded"


def test_failure_gate_fails_a_run_with_neither_result_nor_error() -> None:
    assert not by_name(evaluate(work_order(), None, GateContext()))["failure"].passed


# custom gates


def no_todo(output: Any, options: dict[str, Any]) -> tuple[bool, str]:
    word = options.get("word", "TODO")
    if word in str(output):
        return False, f"output still says {word}"
    return True, f"no {word}"


def broken(output: Any, options: dict[str, Any]) -> tuple[bool, str]:
    raise RuntimeError("boom")


def wrong_shape(output: Any, options: dict[str, Any]) -> Any:
    return "yes"


def test_custom_gate_entry_point_decides_with_its_options() -> None:
    wo = work_order(
        gates=[{"name": "no_fixme", "entry": f"{__name__}:no_todo", "options": {"word": "FIXME"}}]
    )
    failed = by_name(evaluate(wo, result("FIXME: later"), GateContext()))["no_fixme"]
    passed = by_name(evaluate(wo, result("done"), GateContext()))["no_fixme"]
    assert (failed.passed, failed.reason) == (False, "output still says FIXME")
    assert (passed.passed, passed.reason) == (True, "no FIXME")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (f"{__name__}:broken", "raised RuntimeError: boom"),
        (f"{__name__}:wrong_shape", "must return (passed: bool, reason: str)"),
        ("tests.unit.nowhere:gate", "no module 'tests.unit.nowhere' is installed"),
        (f"{__name__}:missing", "defines no function 'missing'"),
    ],
)
def test_a_custom_gate_that_misbehaves_fails_and_names_its_entry(entry: str, expected: str) -> None:
    wo = work_order(gates=[{"name": "mine", "entry": entry}])
    gate = by_name(evaluate(wo, result(), GateContext()))["mine"]
    assert not gate.passed
    assert expected in gate.reason


# redaction flows to later gates and to the actions


def test_redacted_output_and_action_payloads_are_what_the_run_acts_on() -> None:
    wo = work_order(
        gates=[
            {"name": "sensitive_info", "mode": "redact"},
            {"name": "leak_check", "entry": f"{__name__}:no_todo", "options": {"word": "@"}},
        ]
    )
    step = result(
        "mail ada@example.com",
        actions=[Action("write", "out.md", {"content": "call ada@example.com"})],
    )
    report = evaluate(wo, step, GateContext())
    assert not report.blocked
    assert report.redacted
    assert report.output == "mail [REDACTED:email]"
    assert report.actions[0].payload == {"content": "call [REDACTED:email]"}
    # the custom gate after it saw the redacted output
    assert by_name(report)["leak_check"].passed
    # the step's own result is left as it was
    assert step.output == "mail ada@example.com"


def test_prepare_input_redacts_input_for_a_redact_mode_gate_that_scans_input() -> None:
    wo = work_order(
        gates=[{"name": "sensitive_info", "mode": "redact", "options": {"scan_input": True}}]
    )
    cleaned = prepare_input(wo, {"from": "ada@example.com", "n": 3})
    assert cleaned == {"from": "[REDACTED:email]", "n": 3}
    assert prepare_input(work_order(), {"from": "ada@example.com"}) == {"from": "ada@example.com"}


# failures as Temporal reports them (type name and message)


def test_from_failure_maps_temporal_error_types_to_the_right_gate() -> None:
    budget = GateContext.from_failure("BudgetExceeded", "gate budget failed: cap $1 reached")
    assert budget.refusal is not None
    assert (budget.refusal.gate, budget.refusal.reason) == ("budget", "cap $1 reached")
    policy = GateContext.from_failure("PolicyViolation", "model x blocked")
    assert policy.refusal is not None and policy.refusal.gate == "policy"
    assert GateContext.from_failure("RateLimited", "429 x3").rate_limited == 3
    timeout = GateContext.from_failure("StartToClose", "activity timed out", timeout_class="fast")
    assert timeout.timed_out and timeout.timeout_class == "fast"
    other = GateContext.from_failure("ValueError", "bad json", attempts=2)
    assert (other.error, other.attempts) == ("ValueError: bad json", 2)


def test_a_refused_call_fails_only_its_gate_and_the_failure_gate_says_why_it_passed() -> None:
    report = evaluate(work_order(), None, GateContext.from_failure("BudgetExceeded", "cap"))
    assert [r.name for r in report.failed] == ["budget"]
    assert by_name(report)["failure"].reason == "no failure: the budget gate refused the call"
