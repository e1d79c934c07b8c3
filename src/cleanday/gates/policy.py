"""The policy gate: models, providers, transports and routes the Work Order does not allow.

Reports the router's PolicyViolation (raised before the call), and checks every Completion the
step used against the Work Order: its transport must be granted in `transports.order`, its
model must not be blocked, must be the preset's model or one of its fallbacks (option
`check_models`, default true), and its provider must be in `guardrails.allowed_providers`
when that list is set.
"""

from __future__ import annotations

from cleanday.gates.base import GateCheck, Verdict
from cleanday.router.types import Completion
from cleanday.workorder import WorkOrder

NAME = "policy"


def _base(model: str) -> str:
    """A model ID without its provider prefix, lowercased: 'anthropic/claude-x' -> 'claude-x'."""
    return model.rsplit("/", 1)[-1].lower()


def _model_matches(returned: str, declared: str) -> bool:
    # Providers answer with a dated or routed variant of the requested ID
    # ('claude-x' -> 'claude-x-20250101'), so a prefix match on the base name is the fair test.
    r, d = _base(returned), _base(declared)
    return r == d or r.startswith(d + "-") or r.startswith(d + ":") or r.startswith(d + "@")


def _provider(completion: Completion) -> str | None:
    if "/" in completion.model:
        return completion.model.split("/", 1)[0].lower()
    if completion.transport == "anthropic":
        return "anthropic"
    return None


def violations(work_order: WorkOrder, completion: Completion, check_models: bool) -> list[str]:
    """Every way one Completion breaks the Work Order's policy, in words an operator can act on."""
    found: list[str] = []
    granted = work_order.transports.order
    if completion.transport not in granted:
        found.append(
            f"transport {completion.transport} is not granted to {work_order.name} "
            f"(transports.order allows {', '.join(granted)})"
        )
    for blocked in work_order.guardrails.blocked_models:
        if _model_matches(completion.model, blocked):
            found.append(f"model {completion.model} is blocked by guardrails.blocked_models")
    if check_models:
        declared = (work_order.preset.model, *work_order.preset.fallback_models)
        if not any(_model_matches(completion.model, d) for d in declared):
            found.append(
                f"model {completion.model} is neither the preset's model nor one of its "
                f"fallbacks ({', '.join(declared)})"
            )
    allowed = work_order.guardrails.allowed_providers
    provider = _provider(completion)
    if allowed is not None and provider is not None and provider not in allowed:
        found.append(
            f"provider {provider} is not in guardrails.allowed_providers ({', '.join(allowed)})"
        )
    return found


def check(c: GateCheck, work_order: WorkOrder) -> Verdict:
    refusal = c.context.refusal
    if refusal is not None and refusal.gate == NAME:
        return Verdict(False, refusal.reason or "the router refused the call by policy")
    check_models = bool(c.options.get("check_models", True))
    problems: list[str] = []
    for completion in c.completions:
        for problem in violations(work_order, completion, check_models):
            if problem not in problems:
                problems.append(problem)
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, "models, providers and transports allowed")
