"""Clean days and Sunday closes follow the ledger's time zone across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, timedelta

import pytest

from cleanday.clock import day_bounds
from cleanday.domain import Policy, Tier
from tests.unit.ladder_history import History
from tests.unit.test_clock import DST_DAYS

DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)


def history_in(tz: str, dst_sunday: date) -> tuple[History, date]:
    """A behavior registered on the Monday before `dst_sunday`, clean Monday..Saturday."""
    monday = dst_sunday - 6 * DAY
    history = History(Policy(timezone=tz), registered=monday)
    history.clean_runs(monday, 6)
    return history, monday


@pytest.mark.parametrize(("tz", "sunday", "hours"), DST_DAYS)
def test_the_dst_day_closes_at_local_midnight_not_24_hours_after_it_began(
    tz: str, sunday: date, hours: int
) -> None:
    history, _ = history_in(tz, sunday)
    history.run(history.local(sunday, 12))
    start, end = day_bounds(sunday, tz)
    assert history.state(end - MICROSECOND).clean_days == 6
    assert history.state(end).clean_days == 7
    # a naive "start + 24h" would be wrong by an hour either way
    assert start + timedelta(hours=24) != end


@pytest.mark.parametrize(("tz", "sunday", "hours"), DST_DAYS)
def test_a_run_late_on_the_dst_day_belongs_to_that_day(tz: str, sunday: date, hours: int) -> None:
    history, _ = history_in(tz, sunday)
    failing = history.run(history.local(sunday, 23, 30), failed=["schema"])
    state = history.state(failing.at)
    assert state.last_failure is not None and state.last_failure.on == sunday


@pytest.mark.parametrize(("tz", "sunday", "hours"), DST_DAYS)
def test_a_run_just_after_midnight_belongs_to_the_next_day(
    tz: str, sunday: date, hours: int
) -> None:
    history, _ = history_in(tz, sunday)
    history.run(history.local(sunday, 12))
    failing = history.run(history.local(sunday + DAY, 0, 30), failed=["schema"])
    state = history.state(failing.at)
    assert state.last_failure is not None and state.last_failure.on == sunday + DAY
    assert state.clean_days == 0
    assert history.state(day_bounds(sunday, tz)[1]).clean_days == 7  # Sunday itself was clean


@pytest.mark.parametrize(("tz", "sunday", "hours"), DST_DAYS)
def test_a_run_crossing_midnight_on_the_dst_day_belongs_to_the_day_it_finished(
    tz: str, sunday: date, hours: int
) -> None:
    history, _ = history_in(tz, sunday)
    started = history.local(sunday - DAY, 23, 45)  # Saturday night, before the change
    history.run(history.local(sunday, 4, 0), started=started, anomalies=["latency"])
    # Saturday stays clean (6 days), Sunday is unclean
    assert history.state(day_bounds(sunday, tz)[0]).clean_days == 6
    assert history.state(day_bounds(sunday, tz)[1]).clean_days == 0


@pytest.mark.parametrize(("tz", "sunday", "hours"), DST_DAYS)
def test_promotion_on_a_dst_sunday_happens_at_local_monday_midnight(
    tz: str, sunday: date, hours: int
) -> None:
    history, _ = history_in(tz, sunday)
    history.decide(sunday, "promote", when=history.local(sunday, 9))
    history.run(history.local(sunday, 22))
    close = day_bounds(sunday, tz)[1]
    assert history.state(close - MICROSECOND).tier is Tier.A
    state = history.state(close)
    assert state.tier is Tier.B
    assert state.tier_changes[-1].at == close


@pytest.mark.parametrize(
    ("tz", "sunday"), [(tz, sunday) for tz, sunday, hours in DST_DAYS if hours == 25]
)
def test_both_passes_through_the_repeated_hour_are_on_the_same_day_in_time_order(
    tz: str, sunday: date
) -> None:
    history, _ = history_in(tz, sunday)
    repeated_hour = 1 if tz.startswith("America") else 2
    first = history.local(sunday, repeated_hour, 30)
    second = first.replace(fold=1)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    # keys chosen so that a wall-clock comparison (which ignores fold) would put them the
    # wrong way round: the later failure must be the one recorded
    history.run(second, failed=["schema"], run_id="a-later")
    history.run(first, failed=["budget"], run_id="b-earlier")
    state = history.state(day_bounds(sunday, tz)[1])
    assert state.last_failure is not None
    assert (state.last_failure.on, state.last_failure.gate) == (sunday, "schema")
    assert state.clean_days == 0
