"""What every gate sees (GateContext) and what the gates together conclude (GateReport)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cleanday.domain import GateResult
from cleanday.errors import GateFailure, RateLimited
from cleanday.router.types import Completion
from cleanday.steps import Action, StepResult

Output = str | dict[str, Any] | None


@dataclass(frozen=True)
class Refusal:
    """A gate failure the router raised before or while calling the model (no answer used)."""

    gate: str  # "budget" | "policy"
    reason: str


@dataclass(frozen=True)
class GateContext:
    """The facts of one run that the gates judge, besides the step's result.

    Plain data so the runtime can build it inside an activity (see `from_exception`).

    - `refusal`: the router's BudgetExceeded / PolicyViolation, as (gate, reason).
    - `error`: why the run failed after its retry policy (None when it did not fail).
    - `attempts`: how many attempts the run (or its last model call) made.
    - `rate_limited`: consecutive 429 answers that ended the run (3 = the documented failure).
    - `timed_out` / `timeout_class` / `timeout_s`: the run ran out of its timeout class.
    - `input`: the run's input as the step saw it (after `cleanday.gates.prepare_input`),
      scanned by sensitive_info when its `scan_input` option is on. Pass it on every run, not
      only failed ones, or input scanning has nothing to scan.
    """

    refusal: Refusal | None = None
    error: str | None = None
    attempts: int = 1
    rate_limited: int = 0
    timed_out: bool = False
    timeout_class: str | None = None
    timeout_s: float | None = None
    input: dict[str, Any] | None = None

    @classmethod
    def from_failure(
        cls,
        kind: str,
        message: str,
        *,
        attempts: int = 1,
        input: dict[str, Any] | None = None,
        timeout_class: str | None = None,
        timeout_s: float | None = None,
    ) -> GateContext:
        """The context for a failure known only by its type name and message, as Temporal
        reports an activity's exception (`ApplicationError.type`, `.message`)."""
        gate = _REFUSAL_KINDS.get(kind)
        if gate is not None:
            prefix = f"gate {gate} failed: "
            return cls(
                refusal=Refusal(gate, message.removeprefix(prefix)), attempts=attempts, input=input
            )
        if kind == "RateLimited":
            return cls(error=message, attempts=max(attempts, 3), rate_limited=3, input=input)
        if kind in _TIMEOUT_KINDS:
            return cls(
                error=message,
                attempts=attempts,
                timed_out=True,
                timeout_class=timeout_class,
                timeout_s=timeout_s,
                input=input,
            )
        return cls(error=f"{kind}: {message}" if kind else message, attempts=attempts, input=input)

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        *,
        attempts: int = 1,
        input: dict[str, Any] | None = None,
        timeout_class: str | None = None,
        timeout_s: float | None = None,
    ) -> GateContext:
        """The context for a run that ended with `exc` instead of a StepResult."""
        if isinstance(exc, GateFailure):
            return cls(refusal=Refusal(exc.gate, exc.reason), attempts=attempts, input=input)
        if isinstance(exc, RateLimited):
            return cls(
                error=str(exc) or "rate limited",
                attempts=max(attempts, 3),
                rate_limited=3,
                input=input,
            )
        if isinstance(exc, TimeoutError):
            return cls(
                error=str(exc) or "timed out",
                attempts=attempts,
                timed_out=True,
                timeout_class=timeout_class,
                timeout_s=timeout_s,
                input=input,
            )
        return cls(error=f"{type(exc).__name__}: {exc}", attempts=attempts, input=input)


_REFUSAL_KINDS = {"BudgetExceeded": "budget", "PolicyViolation": "policy"}
_TIMEOUT_KINDS = frozenset({"TimeoutError", "Timeout", "StartToClose", "ScheduleToClose"})


@dataclass(frozen=True)
class GateCheck:
    """What one gate function receives: the output so far (earlier gates may have redacted it)."""

    output: Output
    result: StepResult | None
    context: GateContext
    options: dict[str, Any]
    mode: str = "block"
    # what the act step would send out; earlier gates may have redacted their payloads
    actions: tuple[Action, ...] = ()

    @property
    def completions(self) -> list[Completion]:
        return list(self.result.completions) if self.result is not None else []


@dataclass(frozen=True)
class Verdict:
    """One gate's answer; `output` replaces the run's output when a gate redacts it."""

    passed: bool
    reason: str = ""
    output: Output = None
    redacted: bool = False
    actions: tuple[Action, ...] | None = None  # replacements, when a gate redacted payloads


@dataclass(frozen=True)
class GateReport:
    """What the gates concluded. `output` and `actions` are what the run may use from here on:
    redacted copies when a redact-mode gate changed them."""

    results: list[GateResult]
    output: Output
    blocked: bool
    redacted: bool = False
    actions: tuple[Action, ...] = ()

    @property
    def failed(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    def as_dicts(self) -> list[dict[str, Any]]:
        """The `gates` list of a RunReport."""
        return [{"name": r.name, "passed": r.passed, "reason": r.reason} for r in self.results]


def output_text(output: Output) -> str:
    """A string view of an output, for gates that read text."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, sort_keys=True)
