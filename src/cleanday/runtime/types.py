"""The plain data a behavior run passes between its workflow and its activities."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# at module level, not under TYPE_CHECKING: the data converter resolves these annotations
from cleanday.domain import Status, Tier

TASK_QUEUE = "cleanday"

# Outcomes a run reports (docs/contracts.md section 2).
SUCCEEDED = "succeeded"
FAILED = "failed"
BLOCKED = "blocked"
PROPOSED = "proposed"
STAGED = "staged"
EXPIRED = "expired"
SKIPPED = "skipped"  # the behavior was not active when its run started: nothing ran
# the deployment kept the step from running (cleanday.errors.InfrastructureError): neither a
# clean day nor a break, never demotes, never counts toward quarantine
INFRA_ERROR = "infra_error"

# The operator's sign-off on a proposal (A) or staged item (B), as the ledger and the signals say
APPROVED = "approved"
REJECTED = "rejected"
RELEASED = "released"


@dataclass
class RunRequest:
    """What starts a run: the behavior's name and the trigger's input (a webhook body, ...)."""

    behavior: str
    input: dict[str, Any] = field(default_factory=dict)
    trigger: str = "manual"
    # the server knows the Cleanday* search attributes (cleanday.runtime.search): set them
    search_attributes: bool = False


@dataclass
class Binding:
    """What the ledger says about the behavior when its step starts (on the wire: strings)."""

    behavior: str
    tier: Tier
    status: Status
    preset_version: int | None
    key_ref: str
    stage_expiry_hours: float
    step_timeout_seconds: float


@dataclass
class GateOutcome:
    name: str
    passed: bool
    reason: str = ""


@dataclass
class AnomalyOutcome:
    name: str
    detail: str = ""


@dataclass
class StepOutput:
    """What the step produced, flattened for the workflow history."""

    output: Any = None
    summary: str = ""
    actions: list[dict[str, Any]] = field(default_factory=list)
    completions: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    cost_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    model: str | None = None
    transport: str | None = None
    latency_ms: float | None = None
    fell_back: bool = False
    # set when the step ended without a result: the fields of cleanday.gates.GateContext
    # (a budget/policy refusal, a failure after retries, a timeout) for the gates to judge
    context: dict[str, Any] | None = None


@dataclass
class Verdict:
    gates: list[GateOutcome]
    anomalies: list[AnomalyOutcome]
    output: Any = None  # the output after redaction, what the act step uses
    actions: list[dict[str, Any]] = field(default_factory=list)  # redacted likewise

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)


@dataclass
class StepRequest:
    """A run's step: the activity reads the behavior's binding itself, as of the step."""

    behavior: str
    run_id: str
    input: dict[str, Any]
    now: datetime


@dataclass
class FailedStep:
    """A step that failed after its retry policy or ran past its timeout class, for the gates."""

    behavior: str
    run_id: str
    error: str
    attempts: int
    timed_out: bool = False


@dataclass
class Checked:
    """The binding read at the step and, when the behavior was active, what the step produced
    and every gate's verdict on it (both None when nothing ran)."""

    binding: Binding
    step: StepOutput | None = None
    verdict: Verdict | None = None


@dataclass
class ActRequest:
    behavior: str
    run_id: str
    item_id: str | None
    actions: list[dict[str, Any]]


@dataclass
class ActAndReport:
    """Act (permit, then the sink), then report: `report` is the RunReport body whose
    `outcome` the activity sets from the act (succeeded when it acted, blocked when denied)."""

    act: ActRequest
    report: dict[str, Any]


@dataclass
class ActResult:
    acted: bool
    denied: str | None = None  # the ledger's reason when it refused the permit
    done: list[str] = field(default_factory=list)
    reported: bool = False  # act_and_report only: the ledger has the run's report


@dataclass
class RunState:
    """What a query shows about a run in flight, and what the workflow returns."""

    behavior: str = ""
    tier: Tier | None = None
    phase: str = "starting"
    waiting_for: str | None = None
    output: Any = None
    summary: str = ""
    gates: list[GateOutcome] = field(default_factory=list)
    anomalies: list[AnomalyOutcome] = field(default_factory=list)
    outcome: str | None = None
    acted: bool = False
    denied: str | None = None
    decision: str | None = None
    infra: str | None = None  # the InfrastructureError kind when outcome is INFRA_ERROR


def build_infra_report(
    behavior: str, run_id: str, started: datetime, finished: datetime, kind: str, reason: str
) -> dict[str, Any]:
    """The RunReport body of a run the deployment kept from running its step: no gate ran."""
    return {
        "behavior": behavior,
        "run_id": run_id,
        "workflow_id": run_id,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "outcome": INFRA_ERROR,
        "infra": kind,
        "gates": [],
        "anomalies": [],
        "cost_usd": 0.0,
        "summary": f"infrastructure error ({kind}): {reason}",
    }


def build_report(
    binding: Binding,
    run_id: str,
    started: datetime,
    finished: datetime,
    step: StepOutput,
    state: RunState,
) -> dict[str, Any]:
    """The RunReport body (docs/contracts.md section 2); `run_id` is the Temporal workflow ID,
    stable across activity retries, worker restarts and replays, so the ledger counts it once."""
    output_size = len(step.output if isinstance(step.output, str) else repr(step.output or ""))
    return {
        "behavior": binding.behavior,
        "run_id": run_id,
        "workflow_id": run_id,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "outcome": state.outcome,
        "gates": [{"name": g.name, "passed": g.passed, "reason": g.reason} for g in state.gates],
        "anomalies": [{"name": a.name, "detail": a.detail} for a in state.anomalies],
        "cost_usd": step.cost_usd,
        "tokens_in": step.tokens_in,
        "tokens_out": step.tokens_out,
        "model": step.model,
        "transport": step.transport,
        "latency_ms": step.latency_ms,
        "output_size": output_size,
        "summary": step.summary,
        # what the operator signs off: the step's summary, output and each action with its
        # content, as the gates let them through (the sensitive-info gate's redaction applied)
        **({"items": [_sign_off_item(run_id, step, state)]} if state.outcome in _SIGNED else {}),
    }


_SIGNED = (PROPOSED, STAGED)


def _sign_off_item(run_id: str, step: StepOutput, state: RunState) -> dict[str, Any]:
    """The proposal (A) or staged item (B) of a run: its ID is the run's (the act's item)."""
    payload = {"summary": step.summary, "output": state.output, "actions": step.actions}
    return {"id": run_id, "payload": payload}
