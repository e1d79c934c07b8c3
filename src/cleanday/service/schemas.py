"""Bodies of the HTTP API: requests strict, so that a bad body is refused naming the field, and
the answers built from the ledger's results."""

# the run report body is `cleanday.ledger.RunReport`, shared with the workers' client

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from cleanday.domain import BehaviorState, Decision, Status, Tier
from cleanday.ledger import BehaviorRow, DecisionRow
from cleanday.ledger.bounds import StrictIn

OverrideKind = Literal["rejected", "edited", "rerun", "forced_tier", "let_through", "manual"]


class _Body(StrictIn):
    """No unknown field, no infinite number, no invalid Unicode (`cleanday.ledger.bounds`)."""


class RegisterIn(_Body):
    work_order: str = Field(min_length=1, description="the Work Order's YAML text")
    source: str | None = Field(default=None, description="where it came from, for messages")
    revive: bool = Field(
        default=False, description="bring a retired behavior back at tier A with a fresh clock"
    )


class OverrideIn(_Body):
    reason: str = Field(min_length=1)
    kind: OverrideKind = "manual"
    tier: Tier | None = Field(default=None, description="the tier to force (forced_tier only)")


class PermitIn(_Body):
    behavior: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    item_id: str | None = None


class BatchApproveIn(_Body):
    items: list[str] | None = Field(default=None, description="item ids; null for the batch")


class BatchRejectIn(_Body):
    items: list[str] | None = Field(default=None, description="item ids; null for the batch")
    reason: str = Field(min_length=1)


class DecisionIn(_Body):
    behavior: str = Field(min_length=1)
    decision: Decision
    by: str = Field(default="operator", min_length=1, description="who decided")
    door: Literal["cli", "api", "pane"] = Field(
        default="api", description="the door it came through (Notion's are read back, not posted)"
    )


class WorkOrderSummary(BaseModel):
    """What a behavior is, from its Work Order (the key by reference only, never a secret)."""

    name: str
    description: str
    trigger: dict[str, Any]
    reports: str
    key_ref: str
    cap_usd: float
    cadence: str
    preset: str
    model: str
    gates: list[str]
    transports: list[str]
    idle_days: str
    entry: str


class TierChangeOut(BaseModel):
    at: datetime
    from_tier: Tier
    to_tier: Tier
    cause: str
    gate: str | None = None
    reason: str | None = None
    run_id: str | None = None
    week: date | None = None


class StateOut(BaseModel):
    """What the ladder says about a behavior now."""

    tier: Tier
    status: Status
    clean_days: int
    candidate: bool
    last_gate_failure: date | None
    last_failure_gate: str | None
    last_failure_reason: str | None
    tier_since: datetime | None
    registered_at: datetime | None
    quarantined_at: datetime | None
    version: int | None = Field(default=None, description="the Work Order version in force")


class RunNowIn(_Body):
    """`POST /api/v1/behaviors/{name}/runs`: the run's input (a JSON object; empty by default)."""

    input: dict[str, Any] = Field(default_factory=dict)


class BehaviorDetail(BaseModel):
    name: str
    state: StateOut
    tier_changes: list[TierChangeOut]
    work_order: WorkOrderSummary


class ReviewOut(BaseModel):
    week: date = Field(description="the review's Sunday")
    candidates: list[BehaviorRow] = Field(description="each with the decision recorded, if any")
    decisions: list[DecisionRow] = Field(
        default_factory=list, description="every decision recorded so far, superseded ones too"
    )


class DecisionOut(BaseModel):
    week: date
    behavior: str
    decision: Decision
    by: str
    door: str
    decided_at: datetime
    superseded_by: str | None = Field(
        default=None, description="set when a later decision from another door stands"
    )


def state_out(state: BehaviorState) -> StateOut:
    """A behavior's state as the API answers it (`GET .../{name}/state`, in its detail too)."""
    failure = state.last_failure
    return StateOut(
        tier=state.tier,
        status=state.status,
        clean_days=state.clean_days,
        candidate=state.candidate,
        last_gate_failure=failure.on if failure else None,
        last_failure_gate=failure.gate if failure else None,
        last_failure_reason=failure.reason if failure else None,
        tier_since=state.tier_since,
        registered_at=state.registered_at,
        quarantined_at=state.quarantined_at,
        version=state.version,
    )
