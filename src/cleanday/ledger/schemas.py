"""What goes in and what comes out of the ledger: the API schemas (pydantic, so the HTTP API
and `--json` serialize them as they are)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cleanday.domain import Decision, EntryKind, Status, Tier

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

Outcome = Literal["succeeded", "failed", "blocked", "proposed", "staged", "expired"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    started_at: AwareDatetime
    finished_at: AwareDatetime
    outcome: Outcome
    gates: list[GateIn] = Field(default_factory=list)
    anomalies: list[AnomalyIn] = Field(default_factory=list)
    cost_usd: float = Field(ge=0)
    tokens_in: int | None = Field(default=None, ge=0)
    tokens_out: int | None = Field(default=None, ge=0)
    model: str | None = Field(default=None, max_length=256)
    transport: str | None = Field(default=None, max_length=32)
    latency_ms: float | None = Field(default=None, ge=0)
    output_size: int | None = Field(default=None, ge=0)
    summary: str | None = None
    items: list[ItemIn] = Field(default_factory=list)


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


class RegistrationResult(BaseModel):
    name: str
    status: Literal["new", "unchanged", "new_version"]
    version: int
    preset_version: int
    tier: Tier
    message: str


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
