"""Request bodies of the HTTP API, strict so that a bad body is refused naming the field."""

# the run report body is `cleanday.ledger.RunReport`, shared with the workers' client

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cleanday.domain import Decision, Tier

OverrideKind = Literal["rejected", "edited", "rerun", "forced_tier", "let_through", "manual"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
