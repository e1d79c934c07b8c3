"""Request bodies of the HTTP API; strict, so a bad body is refused with the field named."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cleanday.domain import Decision, Tier

Outcome = Literal["succeeded", "failed", "blocked", "proposed", "staged", "expired"]
OverrideKind = Literal["rejected", "edited", "rerun", "forced_tier", "let_through", "manual"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateIn(_Body):
    name: str = Field(min_length=1)
    passed: bool
    reason: str = ""


class AnomalyIn(_Body):
    name: str = Field(min_length=1)
    detail: str = ""


class RunReportIn(_Body):
    """A finished run, as a worker reports it; reporting the same run_id again changes nothing."""

    behavior: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    workflow_id: str | None = None
    # AwareDatetime: a timestamp without an offset is ambiguous about which day the run is in
    started_at: AwareDatetime = Field(description="ISO 8601 with offset")
    finished_at: AwareDatetime = Field(description="ISO 8601 with offset; the run's day")
    outcome: Outcome
    gates: list[GateIn] = Field(default_factory=list)
    anomalies: list[AnomalyIn] = Field(default_factory=list)
    cost_usd: float = Field(ge=0)
    tokens_in: int | None = Field(default=None, ge=0)
    tokens_out: int | None = Field(default=None, ge=0)
    model: str | None = None
    transport: str | None = None
    latency_ms: float | None = Field(default=None, ge=0)
    output_size: int | None = Field(default=None, ge=0)
    summary: str | None = None


class RegisterIn(_Body):
    work_order: str = Field(min_length=1, description="the Work Order's YAML text")
    source: str | None = Field(default=None, description="where it came from, for messages")


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
    by: str = Field(default="operator", min_length=1)
