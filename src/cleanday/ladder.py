"""The ladder: a behavior's state as a pure function of its entries, the policy and "now".

Everything the brief says about tiers lives here, and nothing else does: no database, no
clock, no network. The rules, in the order a reader meets them in the code:

- Only primitive entries count (registered, run_reported, override, decision, paused,
  resumed, retired, revived); the derived audit kinds are ignored, so history can be replayed under
  another policy. Entries with the same `key` are one fact.
- Entries are folded in order of `(at, registered first, key)`: time order, made total so
  that the order entries arrive in never changes the result.
- A day is a calendar date in `policy.timezone`. A run belongs to the day it finished
  (`entry.at`). Day D closes when time reaches the start of D+1; only closed days count.
- Day D is clean if at least one run finished on it and it saw no failed gate, no counted
  anomaly and no override. A day without runs is idle: under IdlePolicy.SKIP it neither
  counts nor breaks the streak, under BREAK it resets it. Days before registration do not
  exist.
- The clean-day clock counts consecutive clean days at the current tier; a gate failure, a
  counted anomaly, an override, a promotion, a demotion and a forced tier reset it at once.
- A run with failed gates demotes one tier at once (however many gates failed). At A there
  is no lower tier: the failure is recorded, and `quarantine_failures` such runs within
  `quarantine_window_days` (counting since the last `resumed`) quarantine the behavior.
- Candidate: active, and at A or B with `clean_day_threshold` clean days, or at C with
  `wings_threshold`. Wings is never a candidate.
- Retirement is terminal until a `revived` entry: it brings the behavior back active, at A,
  with a fresh clock (as a new registration would, keeping its history).
- Sunday review: the last decision recorded for a week before its close wins. At the close
  (the start of Monday, local time), Sunday is closed first; then a Promote decision moves a
  behavior that is still a candidate up exactly one tier and resets its clock. Nothing is
  promoted on any other day or without a Promote decision.

Two ways in, with the same result:

- `compute_state(behavior, entries, policy, now)`: dedupe, sort, fold, view. For rebuilds,
  replays and tests. `fold(behavior, entries, policy)` is the same without the view.
- Incremental, for the store: `acc = initial(behavior)`, `acc = apply(acc, entry, policy)` for
  each new entry, `view(acc, policy, now)`. `apply` costs O(1) amortized and `view` O(1) plus
  the number of pending decisions; neither re-reads history. `apply` never mutates the
  accumulator it is given. It expects entries in fold order, each once: an entry that sorts
  before the last one applied raises `OutOfOrderEntry`, and the store then rebuilds with
  `fold` from all entries (rare: a run report that arrives after a later entry).
  `Accumulator.to_json()` / `Accumulator.from_json()` let the store keep the accumulator in
  its materialized state row. An accumulator belongs to the policy it was folded under; a
  different policy (a replay) starts from `initial` again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cleanday.clock import ONE_DAY, is_sunday, local_date, review_sunday, sunday_close_at
from cleanday.domain import (
    BehaviorState,
    Decision,
    Entry,
    EntryKind,
    GateResult,
    IdlePolicy,
    LastFailure,
    Policy,
    Status,
    Tier,
    TierChange,
)
from cleanday.errors import OutOfOrderEntry

__all__ = [
    "Accumulator",
    "OutOfOrderEntry",
    "apply",
    "compute_state",
    "fold",
    "fold_order",
    "initial",
    "is_candidate",
    "view",
]

# Where an entry sits in the fold: time first; at the same instant registration comes first
# (a behavior exists before anything happens to it) and the key breaks the remaining ties.
FoldOrder = tuple[datetime, int, str]


def fold_order(entry: Entry) -> FoldOrder:
    # In UTC, because Python compares two datetimes of the same zone by wall time, ignoring
    # `fold`: the two passes through a repeated autumn hour would otherwise look simultaneous.
    return (entry.at.astimezone(UTC), 0 if entry.kind is EntryKind.REGISTERED else 1, entry.key)


@dataclass
class Accumulator:
    """What the fold remembers between entries; only what the rules still need.

    Container fields are immutable (tuples), so a shallow copy is a safe snapshot: `apply`
    copies, then reassigns fields on the copy.
    """

    behavior: str
    registered_at: datetime | None = None
    version: int | None = None
    tier: Tier = Tier.A
    status: Status = Status.ACTIVE
    tier_since: datetime | None = None
    clean_days: int = 0  # clean days at this tier, counting closed days only
    # The local day still open (the day of the latest entry); every earlier day is closed.
    open_day: date | None = None
    day_had_run: bool = False
    day_dirty: bool = False  # the open day saw a gate failure, counted anomaly or override
    last_failure: LastFailure | None = None
    last_run_at: datetime | None = None
    # local dates of gate failures at A since the last resume, within the quarantine window
    a_failures: tuple[date, ...] = ()
    quarantined_at: datetime | None = None
    # decisions for review weeks not yet closed, (sunday, decision), sorted by sunday
    decisions: tuple[tuple[date, Decision], ...] = ()
    tier_changes: tuple[TierChange, ...] = ()
    last_order: FoldOrder | None = None

    def copy(self) -> Accumulator:
        """A snapshot to change without touching this one (cheaper than copy.copy)."""
        twin = object.__new__(Accumulator)
        twin.__dict__.update(self.__dict__)
        return twin

    def to_json(self) -> dict[str, Any]:
        return {
            "behavior": self.behavior,
            "registered_at": _iso(self.registered_at),
            "version": self.version,
            "tier": self.tier.value,
            "status": self.status.value,
            "tier_since": _iso(self.tier_since),
            "clean_days": self.clean_days,
            "open_day": _iso(self.open_day),
            "day_had_run": self.day_had_run,
            "day_dirty": self.day_dirty,
            "last_failure": None
            if self.last_failure is None
            else {
                "on": self.last_failure.on.isoformat(),
                "gate": self.last_failure.gate,
                "reason": self.last_failure.reason,
                "run_id": self.last_failure.run_id,
            },
            "last_run_at": _iso(self.last_run_at),
            "a_failures": [d.isoformat() for d in self.a_failures],
            "quarantined_at": _iso(self.quarantined_at),
            "decisions": [[week.isoformat(), d.value] for week, d in self.decisions],
            "tier_changes": [_tier_change_to_json(c) for c in self.tier_changes],
            "last_order": None
            if self.last_order is None
            else [self.last_order[0].isoformat(), self.last_order[1], self.last_order[2]],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Accumulator:
        failure = data.get("last_failure")
        order = data.get("last_order")
        return cls(
            behavior=data["behavior"],
            registered_at=_dt(data.get("registered_at")),
            version=data.get("version"),
            tier=Tier(data.get("tier", Tier.A.value)),
            status=Status(data.get("status", Status.ACTIVE.value)),
            tier_since=_dt(data.get("tier_since")),
            clean_days=int(data.get("clean_days", 0)),
            open_day=_date(data.get("open_day")),
            day_had_run=bool(data.get("day_had_run", False)),
            day_dirty=bool(data.get("day_dirty", False)),
            last_failure=None
            if failure is None
            else LastFailure(
                on=date.fromisoformat(failure["on"]),
                gate=failure["gate"],
                reason=failure["reason"],
                run_id=failure.get("run_id"),
            ),
            last_run_at=_dt(data.get("last_run_at")),
            a_failures=tuple(date.fromisoformat(d) for d in data.get("a_failures", ())),
            quarantined_at=_dt(data.get("quarantined_at")),
            decisions=tuple(
                (date.fromisoformat(week), Decision(d)) for week, d in data.get("decisions", ())
            ),
            tier_changes=tuple(_tier_change_from_json(c) for c in data.get("tier_changes", ())),
            last_order=None
            if order is None
            else (datetime.fromisoformat(order[0]), int(order[1]), str(order[2])),
        )


# ---------------------------------------------------------------------------------------
# The public functions


def initial(behavior: str) -> Accumulator:
    """The accumulator of a behavior nothing has happened to yet."""
    return Accumulator(behavior=behavior)


def apply(acc: Accumulator, entry: Entry, policy: Policy) -> Accumulator:
    """Fold one entry in; first closes every day (and Sunday review) before the entry's day.

    Returns a new accumulator; `acc` is left as it was. Raises `OutOfOrderEntry` for an
    entry that sorts before the last one applied (recompute with `compute_state`).
    """
    if not entry.kind.folded:
        return acc
    order = fold_order(entry)
    if acc.last_order is not None:
        if order == acc.last_order:
            return acc  # the same fact applied twice in a row
        if order < acc.last_order:
            raise OutOfOrderEntry(
                f"behavior {acc.behavior}: entry {entry.key} at {entry.at.isoformat()} is "
                f"older than the last entry folded ({acc.last_order[2]} at "
                f"{acc.last_order[0].isoformat()}); recompute the state from all entries"
            )
    acc = acc.copy()
    acc.last_order = order
    if entry.at.tzinfo is not UTC:
        # Every time the ladder keeps is in UTC: it survives a JSON round trip unchanged, and
        # a wall time inside a DST gap or fold never compares unequal to its own instant.
        entry = Entry(entry.behavior, entry.kind, order[0], entry.key, entry.data)

    if acc.registered_at is None:
        # Days before registration do not exist, and neither does anything that happened in them.
        if entry.kind is EntryKind.REGISTERED:
            _on_registered(acc, entry, policy)
        return acc

    _close_days_before(acc, local_date(entry.at, policy.timezone), policy)
    if acc.status is Status.RETIRED and entry.kind is not EntryKind.REVIVED:
        return acc  # retirement is terminal until a revival
    _HANDLERS[entry.kind](acc, entry, policy)
    return acc


def view(acc: Accumulator, policy: Policy, now: datetime) -> BehaviorState:
    """The behavior's state at `now`: every day that ended by `now` is closed and counted.

    A `now` before the last entry folded shows the state as of that entry.
    """
    if acc.registered_at is not None:
        acc = acc.copy()
        _close_days_before(acc, local_date(now, policy.timezone), policy)
    return BehaviorState(
        behavior=acc.behavior,
        tier=acc.tier,
        status=acc.status,
        clean_days=acc.clean_days,
        candidate=is_candidate(acc, policy),
        last_failure=acc.last_failure,
        tier_since=acc.tier_since,
        registered_at=acc.registered_at,
        tier_changes=acc.tier_changes,
        quarantined_at=acc.quarantined_at,
        last_run_at=acc.last_run_at,
        version=acc.version,
    )


def compute_state(
    behavior: str, entries: Iterable[Entry], policy: Policy, now: datetime
) -> BehaviorState:
    """The state of `behavior` at `now` from its entries, in any order, duplicates and all.

    Entries after `now` have not happened yet at `now` and are left out, so the same history
    answers "what was the state on that day" for any day.
    """
    now_utc = now.astimezone(UTC)
    known = (e for e in entries if e.at.astimezone(UTC) <= now_utc)
    return view(fold(behavior, known, policy), policy, now)


def fold(behavior: str, entries: Iterable[Entry], policy: Policy) -> Accumulator:
    """The accumulator after every entry given: derived kinds dropped, each key once, in order.

    What a store calls to rebuild an accumulator from scratch (after `OutOfOrderEntry`).
    """
    acc = initial(behavior)
    seen: set[str] = set()
    for entry in sorted((e for e in entries if e.kind.folded), key=fold_order):
        if entry.key in seen:
            continue  # the same fact reported again; the earliest report stands
        seen.add(entry.key)
        acc = apply(acc, entry, policy)
    return acc


def is_candidate(acc: Accumulator, policy: Policy) -> bool:
    """Active, and enough clean days at A or B (clean-day threshold) or at C (Wings threshold)."""
    if acc.status is not Status.ACTIVE or acc.registered_at is None:
        return False
    if acc.tier in (Tier.A, Tier.B):
        return acc.clean_days >= policy.clean_day_threshold
    if acc.tier is Tier.C:
        return acc.clean_days >= policy.wings_threshold
    return False  # Wings is the top


# ---------------------------------------------------------------------------------------
# Closing days and Sundays


def _close_days_before(acc: Accumulator, day: date, policy: Policy) -> None:
    """Close every local day before `day`, each Sunday's review right after its day.

    Only the open day can have seen anything; the days between it and `day` are idle, so
    they are handled in one step (a BREAK policy resets the clock once; only Sundays with a
    pending decision can change anything), which keeps a long gap O(pending decisions).
    """
    if acc.open_day is None or acc.open_day >= day:
        return
    _close_day(acc, policy)
    if is_sunday(acc.open_day):
        _close_sunday(acc, acc.open_day, policy)

    first_idle = acc.open_day + ONE_DAY
    if first_idle < day:
        if policy.idle_for(acc.behavior) is IdlePolicy.BREAK:
            acc.clean_days = 0
        for sunday, _ in acc.decisions:
            if first_idle <= sunday < day:
                _close_sunday(acc, sunday, policy)
    acc.open_day = day
    acc.decisions = tuple((week, d) for week, d in acc.decisions if week >= day)


def _close_day(acc: Accumulator, policy: Policy) -> None:
    """Count the open day: clean if it had a run and nothing that makes it unclean."""
    if acc.day_had_run:
        if not acc.day_dirty:
            acc.clean_days += 1
    elif policy.idle_for(acc.behavior) is IdlePolicy.BREAK:
        acc.clean_days = 0
    acc.day_had_run = False
    acc.day_dirty = False


def _close_sunday(acc: Accumulator, sunday: date, policy: Policy) -> None:
    """The Sunday close: a Promote decision moves a behavior that is still a candidate up one."""
    decision = next((d for week, d in acc.decisions if week == sunday), None)
    if decision is Decision.PROMOTE and is_candidate(acc, policy):
        _change_tier(
            acc,
            acc.tier.up(),
            at=sunday_close_at(sunday, policy.timezone),
            cause="promotion",
            week=sunday,
        )


# ---------------------------------------------------------------------------------------
# What each kind of entry does


def _on_registered(acc: Accumulator, entry: Entry, policy: Policy) -> None:
    if acc.registered_at is None:
        # The clock starts at registration, at tier A.
        acc.registered_at = entry.at
        acc.tier_since = entry.at
        acc.open_day = local_date(entry.at, policy.timezone)
    version = entry.data.get("version")
    if isinstance(version, int):
        acc.version = version  # a re-registration is a new version, nothing more


def _on_run_reported(acc: Accumulator, entry: Entry, policy: Policy) -> None:
    if entry.infra_error:
        return  # the infrastructure's fault: neither a clean day nor a break, never a demotion
    acc.day_had_run = True
    acc.last_run_at = entry.at
    failed = entry.failed_gates
    if failed:
        _gate_failure(acc, entry, failed[0], policy)
    elif any(policy.anomaly_counts(a.name) for a in entry.anomalies):
        _make_day_unclean(acc)


def _on_override(acc: Accumulator, entry: Entry, policy: Policy) -> None:
    _make_day_unclean(acc)
    if entry.data.get("kind") == "forced_tier":
        forced = _tier_or_none(entry.data.get("tier"))
        if forced is not None and forced is not acc.tier:
            _change_tier(
                acc,
                forced,
                at=entry.at,
                cause="forced",
                reason=entry.data.get("reason"),
                run_id=entry.data.get("run_id"),
            )


def _on_decision(acc: Accumulator, entry: Entry, policy: Policy) -> None:
    week = _date_or_none(entry.data.get("week"))
    decision = _decision_or_none(entry.data.get("decision"))
    if week is None or decision is None or acc.open_day is None:
        return
    if entry.data.get("superseded_by"):
        return  # kept in the ledger, but a later decision from another door stood
    week = review_sunday(week)
    if week < acc.open_day:
        return  # that review has closed; a late decision changes nothing
    # entries arrive in time order, so the latest decision replaces any earlier one
    others = tuple((w, d) for w, d in acc.decisions if w != week)
    acc.decisions = tuple(sorted((*others, (week, decision)), key=lambda wd: wd[0]))


def _on_paused(acc: Accumulator, entry: Entry, policy: Policy) -> None:
    if acc.status is Status.ACTIVE:
        acc.status = Status.PAUSED


def _on_resumed(acc: Accumulator, entry: Entry, policy: Policy) -> None:
    if acc.status in (Status.PAUSED, Status.QUARANTINED):
        acc.status = Status.ACTIVE
    acc.quarantined_at = None
    acc.a_failures = ()  # quarantine counts failures since the last resume


def _on_retired(acc: Accumulator, entry: Entry, policy: Policy) -> None:
    acc.status = Status.RETIRED


def _on_revived(acc: Accumulator, entry: Entry, policy: Policy) -> None:
    """Back from retirement as if newly registered: active, at A, the clock at zero. Not a tier
    change (nothing demoted it), so no demotion is announced; its history stays."""
    if acc.status is not Status.RETIRED:
        return
    acc.status = Status.ACTIVE
    acc.tier = Tier.A
    acc.tier_since = entry.at
    acc.clean_days = 0
    acc.day_had_run = False
    acc.day_dirty = False
    acc.a_failures = ()
    acc.quarantined_at = None
    acc.decisions = ()
    version = entry.data.get("version")
    if isinstance(version, int):
        acc.version = version  # a registration while retired was not folded


_HANDLERS: dict[EntryKind, Callable[[Accumulator, Entry, Policy], None]] = {
    EntryKind.REGISTERED: _on_registered,
    EntryKind.RUN_REPORTED: _on_run_reported,
    EntryKind.OVERRIDE: _on_override,
    EntryKind.DECISION: _on_decision,
    EntryKind.PAUSED: _on_paused,
    EntryKind.RESUMED: _on_resumed,
    EntryKind.RETIRED: _on_retired,
    EntryKind.REVIVED: _on_revived,
}


# ---------------------------------------------------------------------------------------
# Demotion, quarantine, tier changes


def _gate_failure(acc: Accumulator, entry: Entry, gate: GateResult, policy: Policy) -> None:
    """One run with failed gates: recorded once, demotes once, and counts toward quarantine."""
    today = local_date(entry.at, policy.timezone)
    run_id = entry.data.get("run_id")
    acc.last_failure = LastFailure(on=today, gate=gate.name, reason=gate.reason, run_id=run_id)
    _make_day_unclean(acc)
    if acc.tier is not Tier.A:
        _change_tier(
            acc,
            acc.tier.down(),
            at=entry.at,
            cause="gate",
            gate=gate.name,
            reason=gate.reason,
            run_id=run_id,
        )
        return
    # At A there is nothing lower; repeated failures quarantine instead.
    window_start = today - policy.quarantine_window_days * ONE_DAY
    acc.a_failures = (*(d for d in acc.a_failures if d > window_start), today)
    if (
        acc.status in (Status.ACTIVE, Status.PAUSED)
        and len(acc.a_failures) >= policy.quarantine_failures
    ):
        acc.status = Status.QUARANTINED
        acc.quarantined_at = entry.at


def _make_day_unclean(acc: Accumulator) -> None:
    acc.day_dirty = True
    acc.clean_days = 0


def _change_tier(
    acc: Accumulator,
    to_tier: Tier,
    *,
    at: datetime,
    cause: str,
    gate: str | None = None,
    reason: str | None = None,
    run_id: str | None = None,
    week: date | None = None,
) -> None:
    change = TierChange(
        behavior=acc.behavior,
        at=at,
        from_tier=acc.tier,
        to_tier=to_tier,
        cause=cause,
        gate=gate,
        reason=reason,
        run_id=run_id,
        week=week,
    )
    acc.tier_changes = (*acc.tier_changes, change)
    acc.tier = to_tier
    acc.tier_since = at
    acc.clean_days = 0


# ---------------------------------------------------------------------------------------
# Parsing entry data and JSON


def _tier_or_none(value: object) -> Tier | None:
    try:
        return Tier(str(value))
    except ValueError:
        return None


def _decision_or_none(value: object) -> Decision | None:
    try:
        return Decision(str(value))
    except ValueError:
        return None


def _date_or_none(value: object) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _tier_change_to_json(change: TierChange) -> dict[str, Any]:
    return {
        "behavior": change.behavior,
        "at": change.at.isoformat(),
        "from_tier": change.from_tier.value,
        "to_tier": change.to_tier.value,
        "cause": change.cause,
        "gate": change.gate,
        "reason": change.reason,
        "run_id": change.run_id,
        "week": _iso(change.week),
    }


# A plain dict lookup: Enum.__call__ dominated from_json when a state row is read per report.
_TIER_BY_VALUE = {t.value: t for t in Tier}


def _tier_change_from_json(data: dict[str, Any]) -> TierChange:
    return TierChange(
        behavior=data["behavior"],
        at=datetime.fromisoformat(data["at"]),
        from_tier=_TIER_BY_VALUE[data["from_tier"]],
        to_tier=_TIER_BY_VALUE[data["to_tier"]],
        cause=data["cause"],
        gate=data.get("gate"),
        reason=data.get("reason"),
        run_id=data.get("run_id"),
        week=_date(data.get("week")),
    )
