"""The ladder's rules, one test per rule of the brief's "Vocabulary and rules"."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cleanday.clock import day_start, sunday_close_at
from cleanday.domain import EntryKind, IdlePolicy, LastFailure, Policy, Status, Tier
from cleanday.errors import OutOfOrderEntry
from cleanday.ladder import Accumulator, apply, compute_state, initial, view
from tests.unit.ladder_history import MONDAY, History, sunday_of

DAY = timedelta(days=1)
SUNDAY = sunday_of(MONDAY)  # 2026-01-11


def at_tier(tier: Tier, policy: Policy | None = None) -> History:
    """A behavior forced to `tier` on registration day, so its clock starts clean on day 2."""
    history = History(policy)
    if tier is not Tier.A:
        history.override(MONDAY, kind="forced_tier", tier=tier)
    return history


# --- registration and the clean-day clock ----------------------------------------------


def test_new_behavior_starts_at_a_active_with_clock_at_zero() -> None:
    state = History().state(MONDAY + DAY)
    assert state.tier is Tier.A
    assert state.status is Status.ACTIVE
    assert state.clean_days == 0
    assert not state.candidate
    assert state.last_failure is None
    assert state.registered_at == History().entries[0].at
    assert state.version == 1


def test_unregistered_behavior_has_no_history_to_count() -> None:
    state = compute_state("ghost", [], Policy(), day_start(MONDAY, "UTC"))
    assert (state.tier, state.clean_days, state.registered_at) == (Tier.A, 0, None)
    assert not state.candidate


def test_clean_day_counts_once_the_day_has_closed_not_before() -> None:
    history = History()
    history.run(MONDAY)
    assert history.state(history.local(MONDAY, 23, 59)).clean_days == 0
    assert history.state(MONDAY + DAY).clean_days == 1


def test_consecutive_clean_days_count_one_each_however_many_runs() -> None:
    history = History()
    for d in range(3):
        for hour in (6, 12, 18):
            history.run(history.local(MONDAY + d * DAY, hour))
    assert history.state(MONDAY + 3 * DAY).clean_days == 3


def test_days_before_registration_do_not_exist() -> None:
    history = History(registered=MONDAY + 2 * DAY)
    history.run(MONDAY)  # finished before the behavior was registered
    history.run(MONDAY + DAY)
    state = history.state(MONDAY + 3 * DAY)
    assert state.clean_days == 0
    assert state.last_run_at is None


def test_registration_day_counts_when_a_run_finishes_on_it() -> None:
    history = History()
    history.run(MONDAY)
    assert history.state(MONDAY + DAY).clean_days == 1


# --- demotion ---------------------------------------------------------------------------


def test_gate_failure_at_c_demotes_to_b_resets_clock_and_is_recorded() -> None:
    history = at_tier(Tier.C)
    after = history.clean_runs(MONDAY + DAY, 5)
    failing = history.run(history.local(after, 9, 30), failed=["sensitive_info"], run_id="r-42")
    state = history.state(history.local(after, 9, 31))
    assert state.tier is Tier.B
    assert state.clean_days == 0
    assert state.tier_since == failing.at
    assert state.last_failure == LastFailure(
        on=after, gate="sensitive_info", reason="sensitive_info said no", run_id="r-42"
    )
    change = state.tier_changes[-1]
    assert (change.from_tier, change.to_tier, change.cause) == (Tier.C, Tier.B, "gate")
    assert (change.gate, change.run_id, change.at) == ("sensitive_info", "r-42", failing.at)


@pytest.mark.parametrize(
    ("start", "expected"), [(Tier.WINGS, Tier.C), (Tier.C, Tier.B), (Tier.B, Tier.A)]
)
def test_gate_failure_drops_exactly_one_tier(start: Tier, expected: Tier) -> None:
    history = at_tier(start)
    history.run(MONDAY + DAY, failed=["budget"])
    assert history.state(MONDAY + 2 * DAY).tier is expected


def test_several_gates_failing_in_one_run_demote_once() -> None:
    history = at_tier(Tier.WINGS)
    history.run(MONDAY + DAY, failed=["budget", "schema", "policy"])
    state = history.state(MONDAY + 2 * DAY)
    assert state.tier is Tier.C
    assert len([c for c in state.tier_changes if c.cause == "gate"]) == 1
    assert state.last_failure is not None and state.last_failure.gate == "budget"


def test_two_failing_runs_demote_once_each() -> None:
    history = at_tier(Tier.WINGS)
    history.run(history.local(MONDAY + DAY, 9), failed=["budget"])
    history.run(history.local(MONDAY + DAY, 10), failed=["schema"])
    state = history.state(MONDAY + 2 * DAY)
    assert state.tier is Tier.B
    assert state.last_failure is not None and state.last_failure.gate == "schema"


def test_gate_failure_at_a_is_recorded_and_never_goes_below_a() -> None:
    history = History()
    history.run(MONDAY + DAY, failed=["failure"])
    state = history.state(MONDAY + 2 * DAY)
    assert state.tier is Tier.A
    assert state.tier_changes == ()
    assert state.last_failure is not None and state.last_failure.gate == "failure"
    assert state.status is Status.ACTIVE  # one failure is not a quarantine


def test_day_with_a_gate_failure_is_not_clean_even_with_clean_runs_after_it() -> None:
    history = History()
    history.clean_runs(MONDAY, 3)
    history.run(history.local(MONDAY + 3 * DAY, 8), failed=["schema"])
    history.run(history.local(MONDAY + 3 * DAY, 20))
    assert history.state(MONDAY + 4 * DAY).clean_days == 0
    history.run(MONDAY + 4 * DAY)
    assert history.state(MONDAY + 5 * DAY).clean_days == 1


def test_demotion_resets_clock_so_the_lower_tier_starts_from_zero() -> None:
    history = at_tier(Tier.B)
    after = history.clean_runs(MONDAY + DAY, 10)
    history.run(after, failed=["policy"])
    history.clean_runs(after + DAY, 6)
    state = history.state(after + 7 * DAY)
    assert (state.tier, state.clean_days, state.candidate) == (Tier.A, 6, False)


# --- anomaly and override ---------------------------------------------------------------


def test_anomaly_resets_clock_without_demotion() -> None:
    history = at_tier(Tier.C)
    after = history.clean_runs(MONDAY + DAY, 4)
    history.run(after, anomalies=["cost"])
    state = history.state(after + DAY)
    assert (state.tier, state.clean_days, state.last_failure) == (Tier.C, 0, None)


def test_anomaly_the_policy_does_not_count_keeps_the_day_clean() -> None:
    policy = Policy(counted_anomalies=frozenset({"cost"}))
    history = History(policy)
    history.run(MONDAY, anomalies=["fallback"])
    assert history.state(MONDAY + DAY).clean_days == 1
    history.run(MONDAY + DAY, anomalies=["cost"])
    assert history.state(MONDAY + 2 * DAY).clean_days == 0


def test_override_resets_clock_without_demotion_and_makes_its_day_unclean() -> None:
    history = at_tier(Tier.B)
    after = history.clean_runs(MONDAY + DAY, 4)
    history.run(history.local(after, 9))
    history.override(history.local(after, 16), kind="let_through")
    state = history.state(after + DAY)
    assert (state.tier, state.clean_days) == (Tier.B, 0)
    assert [c.cause for c in state.tier_changes] == ["forced"]  # only the set-up


def test_override_on_an_idle_day_still_resets_the_clock() -> None:
    history = History()
    history.clean_runs(MONDAY, 3)
    history.override(MONDAY + 3 * DAY, kind="rerun")
    assert history.state(MONDAY + 4 * DAY).clean_days == 0


def test_forced_tier_sets_the_tier_and_resets_the_clock() -> None:
    history = History()
    after = history.clean_runs(MONDAY, 5)
    forced = history.override(after, kind="forced_tier", tier=Tier.C)
    state = history.state(after + DAY)
    assert (state.tier, state.clean_days, state.tier_since) == (Tier.C, 0, forced.at)
    change = state.tier_changes[-1]
    assert (change.from_tier, change.to_tier, change.cause) == (Tier.A, Tier.C, "forced")


def test_forced_tier_to_the_current_tier_is_no_tier_change_but_still_resets() -> None:
    history = History()
    after = history.clean_runs(MONDAY, 5)
    history.override(after, kind="forced_tier", tier=Tier.A)
    state = history.state(after + DAY)
    assert (state.tier, state.clean_days, state.tier_changes) == (Tier.A, 0, ())


def test_an_override_forcing_an_unknown_tier_is_a_plain_override() -> None:
    history = History()
    after = history.clean_runs(MONDAY, 5)
    history.add(
        EntryKind.OVERRIDE,
        history.local(after, 9),
        "override:bad",
        {"reason": "typo", "kind": "forced_tier", "tier": "D"},
    )
    state = history.state(after + DAY)
    assert (state.tier, state.clean_days, state.tier_changes) == (Tier.A, 0, ())


def test_re_registering_a_changed_work_order_is_a_new_version_and_keeps_the_clock() -> None:
    history = History()
    history.clean_runs(MONDAY, 3)
    history.add(
        EntryKind.REGISTERED, history.local(MONDAY + 3 * DAY, 8), "registered:2", {"version": 2}
    )
    history.run(MONDAY + 3 * DAY)
    state = history.state(MONDAY + 4 * DAY)
    assert (state.version, state.clean_days, state.registered_at) == (2, 4, history.entries[0].at)


# --- idle days --------------------------------------------------------------------------


def test_idle_days_neither_count_nor_break_the_streak_by_default() -> None:
    history = History()
    history.clean_runs(MONDAY, 3)
    history.clean_runs(MONDAY + 10 * DAY, 2)  # a week idle in between
    assert history.state(MONDAY + 9 * DAY).clean_days == 3
    assert history.state(MONDAY + 12 * DAY).clean_days == 5


def test_idle_day_breaks_the_streak_under_break_policy() -> None:
    history = History(Policy(idle=IdlePolicy.BREAK))
    history.clean_runs(MONDAY, 3)
    assert history.state(MONDAY + 3 * DAY).clean_days == 3
    assert history.state(MONDAY + 4 * DAY).clean_days == 0  # day 4 closed idle
    history.clean_runs(MONDAY + 5 * DAY, 2)
    assert history.state(MONDAY + 7 * DAY).clean_days == 2


def test_idle_policy_can_be_set_per_behavior() -> None:
    policy = Policy(idle_by_behavior={"seo_audit": IdlePolicy.BREAK})
    breaking, skipping = History(policy), History(policy, behavior="webhook_logger")
    for history in (breaking, skipping):
        history.clean_runs(MONDAY, 2)
        history.run(MONDAY + 3 * DAY)
    assert breaking.state(MONDAY + 4 * DAY).clean_days == 1
    assert skipping.state(MONDAY + 4 * DAY).clean_days == 3


# --- candidates -------------------------------------------------------------------------


@pytest.mark.parametrize("tier", [Tier.A, Tier.B])
def test_candidate_at_a_or_b_with_seven_clean_days_not_six(tier: Tier) -> None:
    history = at_tier(tier)
    history.clean_runs(MONDAY + DAY, 7)
    assert not history.state(MONDAY + 7 * DAY).candidate  # 6 closed
    state = history.state(MONDAY + 8 * DAY)
    assert (state.clean_days, state.candidate) == (7, True)


def test_candidate_at_c_needs_the_wings_threshold() -> None:
    history = at_tier(Tier.C)
    history.clean_runs(MONDAY + DAY, 28)
    assert not history.state(MONDAY + 28 * DAY).candidate  # 27 clean days
    assert history.state(MONDAY + 29 * DAY).candidate


def test_thresholds_come_from_the_policy() -> None:
    history = at_tier(Tier.C, Policy(clean_day_threshold=3, wings_threshold=5))
    history.clean_runs(MONDAY + DAY, 5)
    assert history.state(MONDAY + 6 * DAY).candidate


def test_wings_is_never_a_candidate() -> None:
    history = at_tier(Tier.WINGS)
    history.clean_runs(MONDAY + DAY, 40)
    state = history.state(MONDAY + 41 * DAY)
    assert state.clean_days == 40 and not state.candidate


@pytest.mark.parametrize("kind", [EntryKind.PAUSED, EntryKind.RETIRED])
def test_a_behavior_that_is_not_active_is_not_a_candidate(kind: EntryKind) -> None:
    history = History()
    after = history.clean_runs(MONDAY, 8)
    history.status(kind, after)
    assert not history.state(after + DAY).candidate


# --- the Sunday review ------------------------------------------------------------------


def candidate_by_sunday(policy: Policy | None = None) -> History:
    """Clean every day from Monday: 7 clean days once Sunday closes, a candidate then."""
    history = History(policy)
    history.clean_runs(MONDAY, 7)
    return history


def test_promotion_happens_at_the_sunday_close_with_a_promote_decision() -> None:
    history = candidate_by_sunday()
    history.decide(SUNDAY, "promote")
    assert history.state(history.local(SUNDAY, 23, 59)).tier is Tier.A
    close = sunday_close_at(SUNDAY, history.tz)
    state = history.state(close)
    assert (state.tier, state.clean_days, state.tier_since) == (Tier.B, 0, close)
    change = state.tier_changes[-1]
    assert (change.from_tier, change.to_tier, change.cause, change.week) == (
        Tier.A,
        Tier.B,
        "promotion",
        SUNDAY,
    )
    assert change.at == close


def test_sunday_counts_before_the_close_decides() -> None:
    history = History()
    history.clean_runs(MONDAY, 6)  # six clean days by Saturday: not yet a candidate
    history.decide(SUNDAY, "promote")
    history.run(history.local(SUNDAY, 22))  # Sunday itself is the seventh clean day
    assert history.state(SUNDAY + DAY).tier is Tier.B


def test_no_promotion_without_a_decision() -> None:
    history = candidate_by_sunday()
    state = history.state(SUNDAY + 3 * DAY)
    assert (state.tier, state.candidate, state.clean_days) == (Tier.A, True, 7)


def test_hold_keeps_the_tier_and_the_clock() -> None:
    history = candidate_by_sunday()
    history.decide(SUNDAY, "hold")
    history.run(SUNDAY + DAY)
    state = history.state(SUNDAY + 2 * DAY)
    assert (state.tier, state.clean_days) == (Tier.A, 8)


def test_promote_decision_without_being_a_candidate_promotes_nothing() -> None:
    history = History()
    history.clean_runs(MONDAY, 5)
    history.decide(SUNDAY, "promote")
    assert history.state(SUNDAY + DAY).tier is Tier.A


def test_gate_failure_on_sunday_after_a_promote_decision_prevents_the_promotion() -> None:
    history = candidate_by_sunday()
    history.decide(SUNDAY, "promote", when=history.local(SUNDAY, 9))
    history.run(history.local(SUNDAY, 20), failed=["schema"])
    state = history.state(SUNDAY + DAY)
    assert (state.tier, state.clean_days) == (Tier.A, 0)
    assert [c.cause for c in state.tier_changes] == []


def test_anomaly_on_sunday_after_a_promote_decision_prevents_the_promotion() -> None:
    history = History()
    history.clean_runs(MONDAY, 6)
    history.decide(SUNDAY, "promote", when=history.local(SUNDAY, 9))
    history.run(history.local(SUNDAY, 20), anomalies=["latency"])
    assert history.state(SUNDAY + DAY).tier is Tier.A


def test_paused_on_sunday_after_a_promote_decision_is_not_promoted() -> None:
    history = candidate_by_sunday()
    history.decide(SUNDAY, "promote")
    history.status(EntryKind.PAUSED, history.local(SUNDAY, 21))
    assert history.state(SUNDAY + DAY).tier is Tier.A


def test_the_latest_decision_before_the_close_wins() -> None:
    promote_last = candidate_by_sunday()
    promote_last.decide(SUNDAY, "hold", when=promote_last.local(SUNDAY, 9))
    promote_last.decide(SUNDAY, "promote", when=promote_last.local(SUNDAY, 23, 50))
    assert promote_last.state(SUNDAY + DAY).tier is Tier.B

    hold_last = candidate_by_sunday()
    hold_last.decide(SUNDAY, "promote", when=hold_last.local(SUNDAY, 9))
    hold_last.decide(SUNDAY, "hold", when=hold_last.local(SUNDAY, 23, 50))
    assert hold_last.state(SUNDAY + DAY).tier is Tier.A


def test_a_decision_after_the_close_is_ignored() -> None:
    history = candidate_by_sunday()
    history.decide(SUNDAY, "promote", when=history.local(SUNDAY + DAY, 0, 1))
    state = history.state(SUNDAY + 8 * DAY)
    assert state.tier is Tier.A


def test_a_decision_made_before_sunday_counts_at_that_sundays_close() -> None:
    history = candidate_by_sunday()
    history.decide(SUNDAY, "promote", when=history.local(MONDAY + 2 * DAY, 10))
    assert history.state(SUNDAY + DAY).tier is Tier.B


def test_nothing_is_promoted_on_any_day_but_at_the_sunday_close() -> None:
    history = History()
    history.clean_runs(MONDAY, 20)
    history.decide(SUNDAY + 7 * DAY, "promote", when=history.local(MONDAY, 10))
    for d in range(1, 15):
        expected = Tier.B if MONDAY + d * DAY > SUNDAY + 7 * DAY else Tier.A
        assert history.state(MONDAY + d * DAY).tier is expected


def test_promotion_moves_one_tier_at_a_time() -> None:
    history = History()
    history.clean_runs(MONDAY, 40)  # far past both thresholds at A
    for week in range(4):
        history.decide(SUNDAY + week * 7 * DAY, "promote")
    state = history.state(SUNDAY + 22 * DAY)
    # week 1: A->B; weeks 2 and 3: B->C (7 clean days again), C needs 28 clean days
    assert [(c.from_tier, c.to_tier) for c in state.tier_changes] == [
        (Tier.A, Tier.B),
        (Tier.B, Tier.C),
    ]
    assert state.tier is Tier.C
    promotions = [c.week for c in state.tier_changes]
    assert promotions == [SUNDAY, SUNDAY + 7 * DAY]


def test_promotion_resets_the_clock() -> None:
    history = candidate_by_sunday()
    history.decide(SUNDAY, "promote")
    history.clean_runs(SUNDAY + DAY, 3)
    state = history.state(SUNDAY + 4 * DAY)
    assert (state.tier, state.clean_days) == (Tier.B, 3)


def test_decisions_for_an_idle_sunday_still_close_at_midnight() -> None:
    history = History()
    history.clean_runs(MONDAY, 7)
    history.decide(SUNDAY + 7 * DAY, "promote", when=history.local(SUNDAY + 2 * DAY))
    # nothing at all happens in the second week: the streak of 7 survives (idle skips)
    state = history.state(SUNDAY + 30 * DAY)
    assert state.tier is Tier.B
    assert state.tier_changes[-1].at == sunday_close_at(SUNDAY + 7 * DAY, history.tz)


def test_under_break_an_idle_week_loses_the_promotion() -> None:
    history = History(Policy(idle=IdlePolicy.BREAK))
    history.clean_runs(MONDAY, 7)
    history.decide(SUNDAY + 7 * DAY, "promote", when=history.local(SUNDAY + 2 * DAY))
    assert history.state(SUNDAY + 30 * DAY).tier is Tier.A


def test_a_decision_naming_any_day_of_the_week_counts_for_that_weeks_sunday() -> None:
    history = candidate_by_sunday()
    history.decide(SUNDAY - 3 * DAY, "promote", when=history.local(SUNDAY, 9))
    assert history.state(SUNDAY + DAY).tier is Tier.B


def test_replaying_history_under_another_policy_is_calling_the_same_function() -> None:
    history = History()
    for d in range(7):
        history.run(MONDAY + d * DAY, anomalies=["fallback"] if d == 3 else [])
    history.decide(SUNDAY, "promote")
    strict = history.state(SUNDAY + DAY)
    lenient_policy = Policy(counted_anomalies=frozenset({"cost"}))
    monday_after = day_start(SUNDAY + DAY, history.tz)
    lenient = compute_state(history.behavior, history.entries, lenient_policy, monday_after)
    assert (strict.tier, strict.clean_days) == (Tier.A, 3)
    assert lenient.tier is Tier.B


# --- quarantine, pause, resume, retire ---------------------------------------------------


def test_three_gate_failures_in_seven_days_at_a_quarantine_the_behavior() -> None:
    history = History()
    history.run(MONDAY, failed=["budget"])
    history.run(MONDAY + 3 * DAY, failed=["budget"])
    third = history.run(MONDAY + 6 * DAY, failed=["budget"])
    assert history.state(history.local(MONDAY + 6 * DAY, 11)).status is Status.ACTIVE
    state = history.state(third.at)
    assert (state.status, state.quarantined_at, state.tier) == (
        Status.QUARANTINED,
        third.at,
        Tier.A,
    )
    assert not state.candidate


def test_failures_spread_wider_than_the_window_do_not_quarantine() -> None:
    history = History()
    history.run(MONDAY, failed=["budget"])
    history.run(MONDAY + 4 * DAY, failed=["budget"])
    history.run(MONDAY + 7 * DAY, failed=["budget"])  # the first is 7 days back: outside
    assert history.state(MONDAY + 8 * DAY).status is Status.ACTIVE
    history.run(MONDAY + 8 * DAY, failed=["budget"])
    assert history.state(MONDAY + 9 * DAY).status is Status.QUARANTINED


def test_failures_above_a_do_not_count_toward_quarantine() -> None:
    history = at_tier(Tier.C)
    history.run(history.local(MONDAY + DAY, 9), failed=["schema"])  # C -> B
    history.run(history.local(MONDAY + DAY, 10), failed=["schema"])  # B -> A
    history.run(history.local(MONDAY + DAY, 11), failed=["schema"])  # first at A
    history.run(history.local(MONDAY + DAY, 12), failed=["schema"])  # second at A
    state = history.state(MONDAY + 2 * DAY)
    assert (state.tier, state.status) == (Tier.A, Status.ACTIVE)


def test_resume_lifts_quarantine_and_counting_starts_again() -> None:
    history = History()
    for d in range(3):
        history.run(MONDAY + d * DAY, failed=["budget"])
    history.status(EntryKind.RESUMED, MONDAY + 3 * DAY)
    state = history.state(MONDAY + 4 * DAY)
    assert (state.status, state.quarantined_at) == (Status.ACTIVE, None)
    history.run(MONDAY + 4 * DAY, failed=["budget"])
    history.run(MONDAY + 5 * DAY, failed=["budget"])
    assert history.state(MONDAY + 6 * DAY).status is Status.ACTIVE
    history.run(MONDAY + 6 * DAY, failed=["budget"])
    assert history.state(MONDAY + 7 * DAY).status is Status.QUARANTINED


def test_failures_while_paused_at_a_still_quarantine() -> None:
    history = History()
    history.status(EntryKind.PAUSED, history.local(MONDAY, 1))
    for d in range(3):
        history.run(MONDAY + d * DAY, failed=["failure"])
    assert history.state(MONDAY + 3 * DAY).status is Status.QUARANTINED


def test_paused_until_resumed_and_runs_while_paused_still_count() -> None:
    history = History()
    history.status(EntryKind.PAUSED, MONDAY)
    history.clean_runs(MONDAY + DAY, 3)
    paused = history.state(MONDAY + 4 * DAY)
    assert (paused.status, paused.clean_days) == (Status.PAUSED, 3)
    history.status(EntryKind.RESUMED, MONDAY + 4 * DAY)
    assert history.state(MONDAY + 5 * DAY).status is Status.ACTIVE


def test_retired_is_terminal() -> None:
    history = History()
    history.clean_runs(MONDAY, 2)
    history.status(EntryKind.RETIRED, MONDAY + 2 * DAY)
    history.status(EntryKind.RESUMED, MONDAY + 3 * DAY)
    history.override(MONDAY + 3 * DAY, kind="forced_tier", tier=Tier.C)
    state = history.state(MONDAY + 5 * DAY)
    assert (state.status, state.tier, state.candidate) == (Status.RETIRED, Tier.A, False)


def test_revived_comes_back_active_at_a_with_a_fresh_clock_and_its_history_kept() -> None:
    history = at_tier(Tier.C)
    history.clean_runs(MONDAY + DAY, 3)
    history.status(EntryKind.RETIRED, MONDAY + 4 * DAY)
    history.run(MONDAY + 5 * DAY)  # reported while retired (the service refuses it): ignored
    revived = history.add(
        EntryKind.REVIVED, history.local(MONDAY + 6 * DAY, 9), "revived:1", {"version": 2}
    )
    state = history.state(history.local(MONDAY + 6 * DAY, 10))
    assert (state.status, state.tier, state.clean_days) == (Status.ACTIVE, Tier.A, 0)
    assert state.tier_since == revived.at and state.version == 2
    assert [c.to_tier for c in state.tier_changes] == [Tier.C]  # not announced as a demotion
    history.run(MONDAY + 6 * DAY)
    history.run(MONDAY + 7 * DAY)
    assert history.state(MONDAY + 8 * DAY).clean_days == 2


def test_revived_changes_nothing_for_a_behavior_that_is_not_retired() -> None:
    history = History()
    history.clean_runs(MONDAY, 2)
    history.add(EntryKind.REVIVED, history.local(MONDAY + 2 * DAY, 9), "revived:1", {})
    history.run(MONDAY + 2 * DAY)
    assert history.state(MONDAY + 3 * DAY).clean_days == 3


def test_a_quarantined_behavior_retired_then_revived_counts_no_old_failures() -> None:
    history = History(Policy(quarantine_failures=2))
    history.run(MONDAY, failed=["budget"])
    history.run(MONDAY + DAY, failed=["budget"])
    assert history.state(MONDAY + 2 * DAY).status is Status.QUARANTINED
    history.status(EntryKind.RETIRED, MONDAY + 2 * DAY)
    history.add(EntryKind.REVIVED, history.local(MONDAY + 3 * DAY, 9), "revived:1", {})
    history.run(MONDAY + 3 * DAY, failed=["budget"])
    state = history.state(MONDAY + 4 * DAY)
    assert (state.status, state.quarantined_at) == (Status.ACTIVE, None)


# --- entries: duplicates, derived kinds, order --------------------------------------------


def test_a_run_reported_twice_counts_once() -> None:
    history = History(Policy(quarantine_failures=2))
    failing = history.run(MONDAY, failed=["budget"])
    history.entries.append(failing)
    assert history.state(MONDAY + DAY).status is Status.ACTIVE


def test_derived_entries_are_ignored() -> None:
    history = History()
    history.clean_runs(MONDAY, 3)
    history.add(EntryKind.DEMOTED, history.local(MONDAY + DAY), "demoted:x", {"to": "A"})
    history.add(EntryKind.PROMOTED, history.local(MONDAY + DAY), "promoted:x", {"to": "Wings"})
    history.add(EntryKind.GATE_FAILED, history.local(MONDAY + DAY), "gate:x", {})
    history.add(EntryKind.QUARANTINED, history.local(MONDAY + DAY), "q:x", {})
    state = history.state(MONDAY + 3 * DAY)
    assert (state.tier, state.status, state.clean_days) == (Tier.A, Status.ACTIVE, 3)


def test_a_run_that_starts_before_midnight_belongs_to_the_day_it_finished() -> None:
    history = History()
    started = history.local(MONDAY + DAY, 23, 40)
    history.run(history.local(MONDAY + 2 * DAY, 0, 20), started=started, failed=["schema"])
    state = history.state(history.local(MONDAY + 2 * DAY, 1))
    assert state.last_failure is not None and state.last_failure.on == MONDAY + 2 * DAY


# --- the incremental fold ------------------------------------------------------------------


def fold(history: History) -> Accumulator:
    acc = initial(history.behavior)
    for entry in sorted(history.entries, key=lambda e: e.at):
        acc = apply(acc, entry, history.policy)
    return acc


def test_incremental_fold_matches_compute_state_and_survives_json() -> None:
    history = candidate_by_sunday()
    history.decide(SUNDAY, "promote")
    history.run(SUNDAY + 2 * DAY, failed=["policy"])
    acc = initial(history.behavior)
    entries = sorted(history.entries, key=lambda e: e.at)
    for d in range(0, 12):
        now = day_start(MONDAY + d * DAY, history.tz)
        while entries and entries[0].at <= now:
            acc = Accumulator.from_json(apply(acc, entries.pop(0), history.policy).to_json())
        assert view(acc, history.policy, now) == history.state(now)
    assert view(acc, history.policy, now).tier is Tier.A  # promoted, then demoted


def test_apply_does_not_change_the_accumulator_it_is_given() -> None:
    history = History()
    acc = fold(history)
    before = acc.to_json()
    apply(acc, history.run(MONDAY + DAY, failed=["budget"]), history.policy)
    view(acc, history.policy, day_start(MONDAY + 9 * DAY, history.tz))
    assert acc.to_json() == before


def test_an_entry_older_than_the_last_applied_is_refused_as_out_of_order() -> None:
    history = History()
    later = history.run(MONDAY + 2 * DAY)
    earlier = history.run(MONDAY + DAY)
    acc = apply(fold(History()), later, history.policy)
    with pytest.raises(OutOfOrderEntry, match="recompute"):
        apply(acc, earlier, history.policy)


def test_applying_the_same_entry_twice_in_a_row_counts_it_once() -> None:
    history = History(Policy(quarantine_failures=2))
    failing = history.run(MONDAY, failed=["budget"])
    acc = fold(history)
    assert apply(acc, failing, history.policy) is acc
