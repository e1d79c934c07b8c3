"""Properties of the ladder over random histories (hypothesis), and a day-by-day reference model."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanday.clock import day_start, is_sunday, local_date, review_sunday, sunday_close_at
from cleanday.domain import (
    BehaviorState,
    Decision,
    Entry,
    EntryKind,
    IdlePolicy,
    Policy,
    Status,
    Tier,
)
from cleanday.ladder import Accumulator, apply, compute_state, fold, fold_order, initial, view
from tests.unit.ladder_history import BEHAVIOR, at

DAY = timedelta(days=1)
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Sydney"]
# Mondays a few weeks before the 2026 DST changes of those zones, so histories cross them
STARTS = [date(2026, 2, 23), date(2026, 3, 16), date(2026, 9, 21), date(2026, 10, 12)]
GATES = ["budget", "schema", "policy"]
ANOMALIES = ["cost", "latency"]
HISTORY_DAYS = 36
MIN_ENTRIES, MAX_ENTRIES = 0, 40
# A quick run by default; CLEANDAY_PROPERTY_EXAMPLES=1000 for a thorough one.
EXAMPLES = int(os.environ.get("CLEANDAY_PROPERTY_EXAMPLES", "60"))

PROPERTIES = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@dataclass(frozen=True)
class Scenario:
    policy: Policy
    entries: tuple[Entry, ...]
    now: datetime  # after every entry


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    return Policy(
        timezone=draw(st.sampled_from(ZONES)),
        # small thresholds, so that short histories reach candidacy and promotion often
        clean_day_threshold=draw(st.integers(1, 4)),
        wings_threshold=draw(st.integers(2, 6)),
        idle=draw(st.sampled_from(list(IdlePolicy))),
        quarantine_failures=draw(st.integers(1, 4)),
        quarantine_window_days=draw(st.integers(1, 8)),
        counted_anomalies=draw(st.sampled_from([None, frozenset({"cost"}), frozenset()])),
    )


def decode(i: int, minute: int, variant: int, start: date, tz: str) -> Entry:
    """One entry from two integers: when (minutes into the history) and what.

    Two draws per entry keep generation cheap; `variant` 0 is a clean run and small numbers
    are plain entries, so a failing example shrinks toward something readable.
    """
    day = start + (minute // 1440) * DAY
    when = at(day, minute % 1440 // 60, minute % 60, tz)
    what, rest = variant % 16, variant // 16
    data: dict[str, object]
    if what < 11:
        # a sixth of these runs fail one or more gates, a sixth raise anomalies
        failed = [g for bit, g in enumerate(GATES) if rest >> (bit + 3) & 1] or ["schema"]
        anomalies = [a for bit, a in enumerate(ANOMALIES) if rest >> (bit + 6) & 1] or ["cost"]
        data = {
            "run_id": f"r{i}",
            "gates": [{"name": g, "passed": False, "reason": "no"} for g in failed]
            if rest % 6 == 1
            else [{"name": "failure", "passed": True, "reason": ""}],
            "anomalies": [{"name": a, "detail": ""} for a in anomalies] if rest % 6 == 2 else [],
        }
        return Entry(BEHAVIOR, EntryKind.RUN_REPORTED, when, f"run:r{i}", data)
    if what < 14:
        week = review_sunday(day) + (0, 7, -7, 0)[rest % 4] * DAY
        decision = "hold" if rest // 4 % 3 == 2 else "promote"
        data = {"week": week.isoformat(), "decision": decision, "by": "op"}
        return Entry(BEHAVIOR, EntryKind.DECISION, when, f"decision:{i}", data)
    if what == 14 and rest % 2 == 0:
        forced = (None, None, None, *Tier)[rest // 2 % 7]
        data = {"reason": "r", "kind": "manual" if forced is None else "forced_tier"}
        if forced is not None:
            data["tier"] = forced.value
        return Entry(BEHAVIOR, EntryKind.OVERRIDE, when, f"override:{i}", data)
    kind = EntryKind.PAUSED if what == 14 else EntryKind.RESUMED
    if kind is EntryKind.RESUMED and rest % 16 == 15:
        kind = EntryKind.RETIRED  # rarely: retirement is terminal and would end the story
    return Entry(BEHAVIOR, kind, when, f"{kind.value}:{i}", {"by": "op"})


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    policy = draw(policies())
    tz = policy.timezone
    start = draw(st.sampled_from(STARTS)) + draw(st.integers(0, 6)) * DAY
    raw = draw(
        st.lists(
            st.tuples(st.integers(0, HISTORY_DAYS * 1440 - 1), st.integers(0, 4095)),
            min_size=MIN_ENTRIES,
            max_size=MAX_ENTRIES,
        )
    )
    registered_at = at(start, 0, 1, tz)
    entries = [Entry(BEHAVIOR, EntryKind.REGISTERED, registered_at, "registered:1", {})]
    entries += [decode(i, minute, variant, start, tz) for i, (minute, variant) in enumerate(raw)]
    # A backbone of clean daily runs and Sunday decisions, so that streaks grow long enough
    # for candidacy and promotion to happen often, not only by luck.
    run_days = draw(st.integers(0, 2**HISTORY_DAYS - 1))
    run_hour = draw(st.integers(0, 23))
    for offset in range(HISTORY_DAYS):
        if run_days >> offset & 1:
            day = start + offset * DAY
            data = {"run_id": f"d{offset}", "gates": [], "anomalies": []}
            entries.append(
                Entry(
                    BEHAVIOR,
                    EntryKind.RUN_REPORTED,
                    at(day, run_hour, 30, tz),
                    f"run:d{offset}",
                    data,
                )
            )
    weekly = draw(st.integers(0, 3 ** (HISTORY_DAYS // 7 + 1) - 1))
    for week in range(HISTORY_DAYS // 7 + 1):
        choice = weekly // 3**week % 3
        if choice:
            sunday = review_sunday(start) + week * 7 * DAY
            data = {"week": sunday.isoformat(), "decision": ("promote", "hold")[choice - 1]}
            when = at(sunday - (week % 3) * DAY, 9, 0, tz)
            entries.append(Entry(BEHAVIOR, EntryKind.DECISION, when, f"review:{week}", data))
    last_day = max(local_date(e.at, tz) for e in entries)
    now = day_start(last_day + (1 + draw(st.integers(0, 10))) * DAY, tz)
    return Scenario(policy, tuple(entries), now)


def state(s: Scenario, entries: list[Entry] | tuple[Entry, ...] | None = None) -> BehaviorState:
    return compute_state(BEHAVIOR, s.entries if entries is None else entries, s.policy, s.now)


# --- order, duplicates, determinism ------------------------------------------------------


@PROPERTIES
@given(scenarios())
def test_the_same_history_always_gives_the_same_state(s: Scenario) -> None:
    assert state(s) == state(s)


@PROPERTIES
@given(scenarios(), st.data())
def test_duplicated_entries_change_nothing(s: Scenario, data: st.DataObject) -> None:
    copies = data.draw(st.lists(st.sampled_from(s.entries), max_size=20))
    assert state(s, [*s.entries, *copies]) == state(s)


@PROPERTIES
@given(scenarios(), st.data())
def test_the_order_entries_arrive_in_changes_nothing(s: Scenario, data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(s.entries))
    assert state(s, shuffled) == state(s)


@PROPERTIES
@given(scenarios(), st.data())
def test_derived_entries_change_nothing(s: Scenario, data: st.DataObject) -> None:
    derived = [k for k in EntryKind if k.derived]
    noise = [
        Entry(BEHAVIOR, data.draw(st.sampled_from(derived)), e.at, f"noise:{i}", {"tier": "Wings"})
        for i, e in enumerate(s.entries)
    ]
    assert state(s, [*s.entries, *noise]) == state(s)


# --- the Sunday rule and the floor -------------------------------------------------------


@PROPERTIES
@given(scenarios())
def test_promotions_happen_only_at_a_sunday_close_after_a_promote_decision(s: Scenario) -> None:
    for change in state(s).tier_changes:
        if change.cause != "promotion":
            continue
        assert change.week is not None and is_sunday(change.week)
        assert change.at == sunday_close_at(change.week, s.policy.timezone)
        assert local_date(change.at, s.policy.timezone).weekday() == 0  # Monday, 00:00
        decisions = [
            e
            for e in sorted(s.entries, key=fold_order)
            if e.kind is EntryKind.DECISION
            and review_sunday(date.fromisoformat(e.data["week"])) == change.week
            and e.at < change.at
        ]
        assert decisions, "promoted without a decision"
        assert decisions[-1].data["decision"] == "promote"


@PROPERTIES
@given(scenarios())
def test_never_more_than_one_tier_per_sunday(s: Scenario) -> None:
    promotions = [c for c in state(s).tier_changes if c.cause == "promotion"]
    assert all(c.to_tier is c.from_tier.up() and c.from_tier is not Tier.WINGS for c in promotions)
    assert max(Counter(c.week for c in promotions).values(), default=0) <= 1


@PROPERTIES
@given(scenarios())
def test_never_below_a_and_a_gate_failure_drops_exactly_one_tier(s: Scenario) -> None:
    result = state(s)
    assert result.tier in Tier
    for change in result.tier_changes:
        if change.cause == "gate":
            assert change.from_tier is not Tier.A
            assert change.to_tier is change.from_tier.down()


@PROPERTIES
@given(scenarios())
def test_never_promotes_on_a_weekday_only_as_sunday_turns_to_monday(s: Scenario) -> None:
    # walk day by day: the tier can only rise between a Sunday and the Monday after it
    tz = s.policy.timezone
    first = local_date(s.entries[0].at, tz)
    previous = compute_state(BEHAVIOR, s.entries, s.policy, day_start(first, tz))
    for offset in range(1, HISTORY_DAYS + 1):
        d = first + offset * DAY
        current = compute_state(BEHAVIOR, s.entries, s.policy, day_start(d, tz))
        promoted = [c for c in current.tier_changes if c.cause == "promotion"]
        assert len(promoted) - len(
            [c for c in previous.tier_changes if c.cause == "promotion"]
        ) in ((0, 1) if d.weekday() == 0 else (0,))
        previous = current


# --- the incremental fold ----------------------------------------------------------------


@PROPERTIES
@given(scenarios(), st.data())
def test_incremental_fold_equals_compute_state(s: Scenario, data: st.DataObject) -> None:
    unique = {e.key: e for e in sorted(s.entries, key=fold_order, reverse=True)}
    ordered = sorted(unique.values(), key=fold_order)
    acc = initial(BEHAVIOR)
    for i, entry in enumerate(ordered):
        acc = apply(acc, entry, s.policy)
        if data.draw(st.booleans()):
            acc = Accumulator.from_json(json.loads(json.dumps(acc.to_json())))  # as stored
        # look at the state some time after this entry, before the next one arrives
        now = entry.at.astimezone(UTC) + data.draw(st.sampled_from([timedelta(0), DAY / 3, DAY]))
        if i + 1 == len(ordered) or now < ordered[i + 1].at:
            assert view(acc, s.policy, now) == compute_state(BEHAVIOR, ordered, s.policy, now)
    assert view(acc, s.policy, s.now) == state(s)
    # a rebuild from every entry, duplicates and all, lands on the very same accumulator
    assert fold(BEHAVIOR, [*s.entries, *reversed(s.entries)], s.policy).to_json() == acc.to_json()


# --- an independent, day-by-day reference model ------------------------------------------


@dataclass
class Reference:
    tier: Tier
    status: Status
    clean_days: int
    candidate: bool
    promotions: list[date]


def reference(s: Scenario) -> Reference:
    """The brief's rules written the slow, obvious way: walk every local day in order."""
    policy, tz = s.policy, s.policy.timezone
    unique = {e.key: e for e in sorted(s.entries, key=fold_order, reverse=True)}
    entries = sorted(unique.values(), key=fold_order)
    registration = next(i for i, e in enumerate(entries) if e.kind is EntryKind.REGISTERED)
    entries = entries[registration:]  # nothing happens before a behavior exists
    tier, status, clock = Tier.A, Status.ACTIVE, 0
    a_failures: list[date] = []
    decisions: dict[date, str] = {}
    promotions: list[date] = []
    first = local_date(entries[0].at, tz)
    today = local_date(s.now, tz)

    def candidate() -> bool:
        if status is not Status.ACTIVE:
            return False
        need = {Tier.A: policy.clean_day_threshold, Tier.B: policy.clean_day_threshold}
        need[Tier.C] = policy.wings_threshold
        return tier in need and clock >= need[tier]

    d = first
    while d <= today:
        had_run = dirty = False
        for e in (e for e in entries if local_date(e.at, tz) == d):
            if status is Status.RETIRED:
                break
            if e.kind is EntryKind.RUN_REPORTED:
                had_run = True
                failed = [g for g in e.data["gates"] if not g["passed"]]
                counted = [a for a in e.data["anomalies"] if policy.anomaly_counts(a["name"])]
                if failed:
                    dirty, clock = True, 0
                    if tier is Tier.A:
                        a_failures.append(d)
                        recent = [
                            f for f in a_failures if (d - f).days < policy.quarantine_window_days
                        ]
                        if len(recent) >= policy.quarantine_failures and status in (
                            Status.ACTIVE,
                            Status.PAUSED,
                        ):
                            status = Status.QUARANTINED
                    else:
                        tier = tier.down()
                elif counted:
                    dirty, clock = True, 0
            elif e.kind is EntryKind.OVERRIDE:
                dirty, clock = True, 0
                if e.data["kind"] == "forced_tier":
                    tier = Tier(e.data["tier"])
            elif e.kind is EntryKind.DECISION:
                week = date.fromisoformat(e.data["week"])
                if week >= d:
                    decisions[week] = e.data["decision"]
            elif e.kind is EntryKind.PAUSED and status is Status.ACTIVE:
                status = Status.PAUSED
            elif e.kind is EntryKind.RESUMED:
                a_failures = []
                if status in (Status.PAUSED, Status.QUARANTINED):
                    status = Status.ACTIVE
            elif e.kind is EntryKind.RETIRED:
                status = Status.RETIRED
        if d == today:
            break  # today has not closed
        if had_run and not dirty:
            clock += 1
        elif not had_run and policy.idle is IdlePolicy.BREAK:
            clock = 0
        if is_sunday(d) and decisions.get(d) == Decision.PROMOTE and candidate():
            tier, clock = tier.up(), 0
            promotions.append(d)
        d += DAY
    return Reference(tier, status, clock, candidate(), promotions)


@PROPERTIES
@given(scenarios())
def test_the_ladder_agrees_with_a_day_by_day_reference_model(s: Scenario) -> None:
    expected = reference(s)
    result = state(s)
    assert (result.tier, result.status, result.clean_days, result.candidate) == (
        expected.tier,
        expected.status,
        expected.clean_days,
        expected.candidate,
    )
    assert [c.week for c in result.tier_changes if c.cause == "promotion"] == expected.promotions
