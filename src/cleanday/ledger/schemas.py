"""What goes in and what comes out of the ledger: the API schemas (pydantic, so the HTTP API
and `--json` serialize them as they are)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from cleanday.domain import Decision, EntryKind, Status, Tier
from cleanday.ledger.bounds import Cost, Count, Millis, Stamp, StrictIn

__all__ = [
    "AnomalyIn",
    "BatchResult",
    "BehaviorRow",
    "DayCloseResult",
    "GateIn",
    "ItemIn",
    "LedgerEntryRow",
    "Medians",
    "PendingItemRow",
    "Permit",
    "RebuildResult",
    "RegistrationResult",
    "ReportResult",
    "RunReport",
    "StateDifference",
    "SundayCloseResult",
]

# infra_error: the deployment kept the step from running (docs/contracts.md section 2)
Outcome = Literal["succeeded", "failed", "blocked", "proposed", "staged", "expired", "infra_error"]


class _In(StrictIn):
    """A body from outside, within `cleanday.ledger.bounds`."""


class GateIn(_In):
    name: str = Field(min_length=1, max_length=64)
    passed: bool
    reason: str = ""


class AnomalyIn(_In):
    name: str = Field(min_length=1, max_length=64)
    detail: str = ""


class ItemIn(_In):
    """A proposal (tier A) or staged item (tier B) the run produced; defaults to one per run."""

    id: str = Field(min_length=1, max_length=256)
    payload: dict[str, Any] = Field(default_factory=dict)


class RunReport(_In):
    """A finished run, as the worker reports it (also the body of POST /api/v1/runs)."""

    behavior: str = Field(min_length=1, max_length=64)
    run_id: str = Field(min_length=1, max_length=256)
    workflow_id: str | None = Field(default=None, max_length=256)
    started_at: Stamp
    finished_at: Stamp
    outcome: Outcome
    # what kept the step from running, for outcome infra_error (and only then): ledger,
    # work_order, step_code, secret, ...
    infra: str | None = Field(default=None, max_length=32)
    gates: list[GateIn] = Field(default_factory=list)
    anomalies: list[AnomalyIn] = Field(default_factory=list)
    cost_usd: Cost
    tokens_in: Count | None = None
    tokens_out: Count | None = None
    model: str | None = Field(default=None, max_length=256)
    transport: str | None = Field(default=None, max_length=32)
    latency_ms: Millis | None = None
    output_size: Count | None = None
    summary: str | None = None
    items: list[ItemIn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _finished_after_start(self) -> RunReport:
        if self.finished_at < self.started_at:
            raise ValueError(
                f"finished_at {self.finished_at.isoformat()} is before started_at "
                f"{self.started_at.isoformat()}"
            )
        return self


class BehaviorRow(BaseModel):
    """One line of the Pane of Glass (and of `ledger --json`)."""

    name: str
    tier: Tier
    status: Status
    clean_days: int
    candidate: bool
    last_gate_failure: date | None
    last_failure_gate: str | None = None
    last_failure_reason: str | None = None
    tier_since: datetime | None = None
    version: int = 1
    preset_version: int = 1
    updated_at: datetime | None = None
    decision: Decision | None = None  # filled by `candidates(week)`


class DecisionRow(BaseModel):
    """One Sunday decision as the ledger holds it: who made it, through which door, when it was
    made there (`decided_at`) and recorded (`at`); `stands` for the one the close will use."""

    week: date
    behavior: str
    decision: Decision
    by: str
    door: str | None = None  # None for a decision recorded before doors were kept
    at: datetime
    decided_at: datetime
    superseded_by: str | None = None
    stands: bool = False


class RegistrationResult(BaseModel):
    name: str
    status: Literal["new", "unchanged", "new_version", "revived"]
    version: int
    preset_version: int
    tier: Tier
    message: str
    # the step code changed since the last registration: running workers must reload
    reload_workers: bool = False


class ReportResult(BaseModel):
    behavior: str
    run_id: str
    recorded: bool  # False when this run_id was already recorded
    message: str
    state: BehaviorRow
    derived: list[str] = Field(default_factory=list)  # kinds of the audit entries written


class Permit(BaseModel):
    granted: bool = True
    behavior: str
    run_id: str
    tier: Tier
    item_id: str | None = None
    reason: str
    granted_at: datetime
    seq: int | None = None  # the chain entry that records this permit


class BatchResult(BaseModel):
    behavior: str
    action: Literal["approved", "rejected", "released"]
    items: list[str]


class PendingItemRow(BaseModel):
    """A tier-A proposal or tier-B staged item and where the operator's sign-off stands."""

    behavior: str
    item_id: str
    run_id: str
    kind: Literal["proposal", "staged"]
    status: Literal["pending", "approved", "rejected", "released", "expired", "acted"]
    payload: dict[str, Any]
    created_at: datetime
    expires_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None


class LedgerEntryRow(BaseModel):
    seq: int
    behavior: str
    kind: EntryKind
    at: datetime
    key: str
    data: dict[str, Any]
    prev_hash: str
    hash: str
    recorded_at: datetime


class DayCloseResult(BaseModel):
    date: date
    already_closed: bool
    behaviors: int  # behaviors whose state was refreshed
    entries_folded: int
    demoted: list[str] = Field(default_factory=list)
    quarantined: list[str] = Field(default_factory=list)
    expired_items: int = 0
    seconds: float = 0.0


class SundayCloseResult(BaseModel):
    week: date
    already_closed: bool
    promoted: list[str] = Field(default_factory=list)
    held: list[str] = Field(default_factory=list)
    outbox: int = 0


class StateDifference(BaseModel):
    behavior: str
    field: str
    stored: Any
    rebuilt: Any


class RebuildResult(BaseModel):
    behaviors: int
    entries: int
    differences: list[StateDifference]


class Medians(BaseModel):
    behavior: str
    days: int
    runs: int
    cost_usd: float | None
    latency_ms: float | None
    output_size: float | None
