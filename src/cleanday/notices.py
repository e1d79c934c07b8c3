"""What happened in the ledger, as typed notices: plain frozen data, no I/O, no channel.

The ledger raises a notice for every consequence worth reacting to (a registration, a run, a
gate failure, a tier change, a quarantine, a review opened or closed, a sign-off, a status or
state change) into its unit of work. Who reacts, and how, is the business of one table outside
the ledger (`cleanday.reactions.HANDLERS`): a notice never says where it goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from cleanday.domain import LastFailure, Status, Tier


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the ledger recorded; `at` is when it happened (aware)."""

    behavior: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Registered(Notice):
    """A Work Order was registered: a new behavior, or a new version of one."""

    version: int
    preset_version: int
    new: bool  # the first registration of this behavior
    preset_changed: bool  # this registration made a new preset version
    source: str


@dataclass(frozen=True, slots=True)
class RunReported(Notice):
    """A finished run was recorded (once per run ID); `at` is when the run finished."""

    run_id: str
    workflow_id: str | None
    outcome: str
    tier: Tier  # the tier the run ran at


@dataclass(frozen=True, slots=True)
class InfraErrored(Notice):
    """A run the deployment kept from running its step (outcome infra_error): the operator is
    told; the behavior's tier, clock and quarantine count are untouched."""

    run_id: str
    workflow_id: str | None
    kind: str  # ledger | temporal | work_order | step_code | secret | unknown
    reason: str


@dataclass(frozen=True, slots=True)
class FailedGate:
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class GateFailed(Notice):
    """A run failed one or more gates; `at` is when the run finished, with its own offset."""

    run_id: str
    workflow_id: str | None
    tier: Tier  # the tier the run ran at
    gates: tuple[FailedGate, ...]
    demoted_to: Tier | None  # the tier this run's failure demoted the behavior to, if it did


@dataclass(frozen=True, slots=True)
class TierChanged(Notice):
    """A promotion or demotion the ladder concluded (its derived entry has key `key`)."""

    key: str
    from_tier: Tier
    to_tier: Tier
    cause: str  # "promotion" (Sunday review) | "gate" | "forced" (operator override)
    gate: str | None = None
    reason: str | None = None
    run_id: str | None = None
    workflow_id: str | None = None
    week: date | None = None

    def facts(self) -> dict[str, Any]:
        """from, to, cause and whichever of gate, reason, run_id and week it has, as JSON (the
        data of its derived entry)."""
        out: dict[str, Any] = {
            "from": self.from_tier.value,
            "to": self.to_tier.value,
            "cause": self.cause,
        }
        for name, value in (("gate", self.gate), ("reason", self.reason), ("run_id", self.run_id)):
            if value is not None:
                out[name] = value
        if self.week is not None:
            out["week"] = self.week.isoformat()
        return out


@dataclass(frozen=True, slots=True)
class Promoted(TierChanged):
    pass


@dataclass(frozen=True, slots=True)
class Demoted(TierChanged):
    pass


@dataclass(frozen=True, slots=True)
class PresetPublished(Notice):
    """A preset version became the one published for a tier: at registration, promotion or
    demotion (raised by the preset lifecycle's reactions). `restored`: a demotion brought an
    older version back, as this new version. `key` names the cause, once per behavior."""

    version: int
    tier: Tier
    reason: str
    key: str
    restored: bool = False


@dataclass(frozen=True, slots=True)
class Quarantined(Notice):
    """Repeated gate failures at A quarantined the behavior (its schedule pauses)."""

    reason: str
    last_failure: LastFailure | None


@dataclass(frozen=True, slots=True)
class Candidate:
    behavior: str
    tier: Tier
    clean_days: int


@dataclass(frozen=True, slots=True)
class ReviewOpened(Notice):
    """Sunday morning: the week's candidates are put up for review (behavior is None)."""

    week: date  # the review's Sunday
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True, slots=True)
class ReviewClosed(Notice):
    """The Sunday review closed: who moved up, who was held (behavior is None)."""

    week: date
    promoted: tuple[str, ...]
    held: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SignedItem:
    item_id: str
    run_id: str  # the run that produced the item (its workflow ID)


@dataclass(frozen=True, slots=True)
class ItemsSignedOff(Notice):
    """The operator approved or rejected tier-A proposals, or released a tier-B staged item,
    from whichever door (CLI, API, a form, a Notion decision)."""

    action: Literal["approved", "rejected", "released"]
    items: tuple[SignedItem, ...]
    by: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StatusChanged(Notice):
    """The operator paused, resumed or retired a behavior."""

    from_status: Status
    to_status: Status
    by: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StateChanged(Notice):
    """A behavior's row as the operator reads it (the Pane of Glass, the Notion Promotion
    Ledger) changed: raised once per transaction per behavior, with the row as it now is."""

    tier: Tier
    status: Status
    clean_days: int
    candidate: bool
    last_gate_failure: date | None
    last_failure_gate: str | None
    last_failure_reason: str | None
    version: int
    preset_version: int
