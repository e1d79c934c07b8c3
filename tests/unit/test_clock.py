"""Local days, their bounds and review weeks, right across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from cleanday.clock import day_bounds, local_date, review_sunday, sunday_close_at
from tests.unit.ladder_history import at

# (zone, DST change day, length of that day in hours); every one of these days is a Sunday
DST_DAYS = [
    ("America/New_York", date(2026, 3, 8), 23),  # spring forward 02:00 -> 03:00
    ("America/New_York", date(2026, 11, 1), 25),  # fall back 02:00 -> 01:00
    ("Europe/Berlin", date(2026, 3, 29), 23),  # spring forward 02:00 -> 03:00
    ("Europe/Berlin", date(2026, 10, 25), 25),  # fall back 03:00 -> 02:00
    ("Australia/Sydney", date(2026, 10, 4), 23),  # spring forward 02:00 -> 03:00
    ("Australia/Sydney", date(2026, 4, 5), 25),  # fall back 03:00 -> 02:00
]


@pytest.mark.parametrize(("tz", "day", "hours"), DST_DAYS)
def test_day_bounds_are_local_midnights_and_dst_days_are_23_or_25_hours(
    tz: str, day: date, hours: int
) -> None:
    start, end = day_bounds(day, tz)
    assert start.tzinfo is UTC and end.tzinfo is UTC
    assert end - start == timedelta(hours=hours)
    assert start == at(day, 0, 0, tz)
    assert end == at(day + timedelta(days=1), 0, 0, tz)
    assert local_date(start, tz) == day
    assert local_date(end - timedelta(microseconds=1), tz) == day
    assert local_date(end, tz) == day + timedelta(days=1)


@pytest.mark.parametrize(("tz", "day", "hours"), DST_DAYS)
def test_local_date_of_late_evening_and_small_hours_on_dst_days(
    tz: str, day: date, hours: int
) -> None:
    assert local_date(at(day, 23, 59, tz), tz) == day
    assert local_date(at(day, 0, 1, tz), tz) == day
    # both readings of a repeated hour (fall back) are still on the same local day
    assert local_date(at(day, 2, 30, tz, fold=1), tz) == day


def test_day_bounds_in_utc_are_plain_24_hour_days() -> None:
    start, end = day_bounds(date(2026, 3, 8), "UTC")
    assert start == datetime(2026, 3, 8, tzinfo=UTC)
    assert end - start == timedelta(hours=24)


def test_local_date_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_date(datetime(2026, 1, 1, 12), "UTC")


def test_the_same_instant_is_on_different_local_days_in_different_zones() -> None:
    instant = datetime(2026, 1, 5, 23, 30, tzinfo=UTC)
    assert local_date(instant, "UTC") == date(2026, 1, 5)
    assert local_date(instant, "Europe/Berlin") == date(2026, 1, 6)
    assert local_date(instant, "America/New_York") == date(2026, 1, 5)
    assert local_date(instant, "Australia/Sydney") == date(2026, 1, 6)


@pytest.mark.parametrize("offset", range(7))
def test_review_week_runs_monday_to_sunday(offset: int) -> None:
    monday = date(2026, 1, 5)
    assert review_sunday(monday + timedelta(days=offset)) == date(2026, 1, 11)
    assert review_sunday(monday + timedelta(days=7 + offset)) == date(2026, 1, 18)


@pytest.mark.parametrize(("tz", "sunday", "hours"), DST_DAYS)
def test_sunday_close_is_the_following_local_midnight(tz: str, sunday: date, hours: int) -> None:
    close = sunday_close_at(sunday, tz)
    assert close == at(sunday + timedelta(days=1), 0, 0, tz)
    assert close == day_bounds(sunday, tz)[1]


def test_sunday_close_refuses_a_day_that_is_not_a_sunday() -> None:
    with pytest.raises(ValueError, match="2026-01-11"):
        sunday_close_at(date(2026, 1, 7), "UTC")
