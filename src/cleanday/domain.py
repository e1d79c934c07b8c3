"""The ledger's vocabulary: tiers, statuses, entries, policy and state. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any


class Tier(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    WINGS = "Wings"

    @property
    def rank(self) -> int:
        return _TIER_ORDER.index(self)

    def up(self) -> Tier:
        """One tier higher; Wings stays Wings."""
        return _TIER_ORDER[min(self.rank + 1, len(_TIER_ORDER) - 1)]

    def down(self) -> Tier:
        """One tier lower; A stays A."""
        return _TIER_ORDER[max(self.rank - 1, 0)]


_TIER_ORDER: tuple[Tier, ...] = (Tier.A, Tier.B, Tier.C, Tier.WINGS)


class Status(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    QUARANTINED = "quarantined"
    RETIRED = "retired"


class EntryKind(StrEnum):
    """Kinds of ledger entry.

    Primitive kinds are facts from the outside world; the ladder folds them into state.
    Derived kinds (promoted, demoted, quarantined, gate_failed, anomaly) are written by the
    service as an audit trail of what the ladder concluded; the ladder ignores them, which
    is what lets `ledger replay` recompute history under another policy.
    Sign-off kinds (approved, released, expired, permit) are facts the ladder does not count:
    what the operator signed off and each act permit granted. A permit is granted from them,
    never from the `pending_items` row (a rejection is an `override`, which resets the clock).
    """

    # primitive
    REGISTERED = "registered"
    RUN_REPORTED = "run_reported"
    OVERRIDE = "override"
    DECISION = "decision"
    PAUSED = "paused"
    RESUMED = "resumed"
    RETIRED = "retired"
    REVIVED = "revived"  # a retired behavior brought back, at A with a fresh clock
    # derived (audit only)
    GATE_FAILED = "gate_failed"
    ANOMALY = "anomaly"
    PROMOTED = "promoted"
    DEMOTED = "demoted"
    QUARANTINED = "quarantined"
    # sign-off facts (chained, not folded)
    APPROVED = "approved"
    RELEASED = "released"
    EXPIRED = "expired"
    PERMIT = "permit"
    INFRA_ERROR = "infra_error"  # a run the deployment kept from running its step
    KEY_RELEASED = "key_released"  # a retirement freed the behavior's model key for reuse

    @property
    def derived(self) -> bool:
        return self in _DERIVED

    @property
    def folded(self) -> bool:
        """Whether the ladder folds entries of this kind (the primitive kinds)."""
        return self not in _DERIVED and self not in _SIGN_OFF


_DERIVED = frozenset(
    {
        EntryKind.GATE_FAILED,
        EntryKind.ANOMALY,
        EntryKind.PROMOTED,
        EntryKind.DEMOTED,
        EntryKind.QUARANTINED,
        EntryKind.INFRA_ERROR,
        EntryKind.KEY_RELEASED,
    }
)
_SIGN_OFF = frozenset({EntryKind.APPROVED, EntryKind.RELEASED, EntryKind.EXPIRED, EntryKind.PERMIT})


OVERRIDE_KINDS = ("manual", "rejected", "edited", "rerun", "let_through", "forced_tier")
"""The kinds of operator override (`cleanday override --kind`); forced_tier comes with a tier."""


class Decision(StrEnum):
    PROMOTE = "promote"
    HOLD = "hold"


DECISION_DOORS = ("cli", "api", "pane", "notion")
"""The doors a Sunday decision comes through; each decision entry names its own."""


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    reason: str = ""


@dataclass(frozen=True)
class AnomalyFlag:
    name: str
    detail: str = ""


@dataclass(frozen=True)
class Entry:
    """One ledger entry.

    `key` identifies the fact: two entries with the same key are the same fact reported twice
    (for a run: ``run:<run_id>``), and the ladder counts it once. `at` is timezone-aware; for a
    run report it is the run's finish time (a run belongs to the day it finished).

    `data` by kind:
    - registered: {"version": int}
    - run_reported: {"run_id", "workflow_id", "started_at", "outcome",
      "gates": [{"name","passed","reason"}], "anomalies": [{"name","detail"}], "cost_usd", ...}
    - override: {"reason": str, "kind": "rejected"|"edited"|"rerun"|"forced_tier"|"let_through"
      |"manual", "tier": "A"|"B"|"C"|"Wings" (forced_tier only), "run_id"?: str}
    - decision: {"week": "YYYY-MM-DD" (the review's Sunday), "decision": "promote"|"hold",
      "by": str, "door"?: "cli"|"api"|"pane"|"notion", "decided_at"?: ISO time it was made at
      its door, "superseded_by"?: str (a later decision from another door stood; the ladder
      ignores this one)}
    - paused / resumed / retired: {"reason"?: str, "by"?: str}
    - revived: {"version": int, "by"?: str, "source"?: str}
    """

    behavior: str
    kind: EntryKind
    at: datetime
    key: str
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(f"ledger entry {self.key!r}: 'at' must be timezone-aware")

    @property
    def gates(self) -> tuple[GateResult, ...]:
        return tuple(GateResult(**g) for g in self.data.get("gates", ()))

    @property
    def anomalies(self) -> tuple[AnomalyFlag, ...]:
        return tuple(AnomalyFlag(**a) for a in self.data.get("anomalies", ()))

    @property
    def failed_gates(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if not g.passed)

    @property
    def infra_error(self) -> bool:
        """A run the deployment kept from running its step: not the behavior's doing."""
        return self.data.get("outcome") == "infra_error"


class IdlePolicy(StrEnum):
    SKIP = "skip"  # an idle day neither counts nor breaks the streak (default)
    BREAK = "break"  # an idle day resets the streak


@dataclass(frozen=True)
class Policy:
    """The rules the ladder applies; `ledger replay --policy FILE` swaps them."""

    timezone: str = "UTC"
    clean_day_threshold: int = 7
    wings_threshold: int = 28
    idle: IdlePolicy = IdlePolicy.SKIP
    quarantine_failures: int = 3
    quarantine_window_days: int = 7
    # which anomaly names make a day unclean; None means every anomaly counts
    counted_anomalies: frozenset[str] | None = None
    # per-behavior idle policy, overriding `idle`
    idle_by_behavior: dict[str, IdlePolicy] = field(default_factory=dict)

    def idle_for(self, behavior: str) -> IdlePolicy:
        return self.idle_by_behavior.get(behavior, self.idle)

    def anomaly_counts(self, name: str) -> bool:
        return self.counted_anomalies is None or name in self.counted_anomalies


@dataclass(frozen=True)
class LastFailure:
    on: date  # local date in the ledger's time zone
    gate: str
    reason: str
    run_id: str | None = None


@dataclass(frozen=True)
class TierChange:
    """A promotion or demotion the ladder concluded, for the service to record and announce."""

    behavior: str
    at: datetime
    from_tier: Tier
    to_tier: Tier
    cause: str  # "promotion" | "gate" | "forced"
    gate: str | None = None
    reason: str | None = None
    run_id: str | None = None
    week: date | None = None


@dataclass(frozen=True)
class BehaviorState:
    """What the ladder says about one behavior at a given moment."""

    behavior: str
    tier: Tier
    status: Status
    clean_days: int
    candidate: bool
    last_failure: LastFailure | None
    tier_since: datetime | None
    registered_at: datetime | None
    # everything the ladder concluded along the way, oldest first
    tier_changes: tuple[TierChange, ...] = ()
    quarantined_at: datetime | None = None
    last_run_at: datetime | None = None  # finish time of the latest run folded in
    version: int | None = None  # Work Order version from the latest `registered` entry
