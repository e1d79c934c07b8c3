from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cleanday.config import Settings
from cleanday.errors import DecisionError
from cleanday.ledger.days import MissedCloses
from cleanday.scheduler import (
    DAY_CLOSE_JOB,
    OUTBOX_JOB,
    REVIEW_POST_JOB,
    SUNDAY_CLOSE_JOB,
    catch_up_job,
    close_sunday,
    day_close_job,
    last_sunday_before,
    review_post_job,
    start_scheduler,
    sunday_close_job,
)

NY = ZoneInfo("America/New_York")


class RecordingService:
    """Records which closes the jobs ask the ledger service for; `missed` is what it says a
    stopped service owes."""

    def __init__(self, missed: MissedCloses | None = None) -> None:
        self.calls: list[tuple[str, date]] = []
        self.asked: list[date] = []
        self.missed = missed or MissedCloses([], [])

    def missed_closes(self, today: date) -> MissedCloses:
        self.asked.append(today)
        return MissedCloses(
            [d for d in self.missed.days if d < today],
            [d for d in self.missed.sundays if d < today],
        )

    def close_day(self, d: date) -> None:
        self.calls.append(("close_day", d))

    def close_sunday(self, d: date) -> None:
        self.calls.append(("close_sunday", d))

    def post_review(self, d: date) -> None:
        self.calls.append(("post_review", d))


def at(*args: int) -> Any:
    moment = datetime(*args, tzinfo=UTC)  # type: ignore[misc]
    return lambda: moment


def test_day_close_closes_yesterday_in_the_ledgers_time_zone() -> None:
    service = RecordingService()
    # 05:30 UTC on Nov 9 is 00:30 in New York: yesterday there is Nov 8
    day_close_job(service, NY, at(2026, 11, 9, 5, 30))
    # 04:30 UTC on Nov 9 is still Nov 8 in New York: yesterday there is Nov 7
    day_close_job(service, NY, at(2026, 11, 9, 4, 30))
    assert service.calls == [("close_day", date(2026, 11, 8)), ("close_day", date(2026, 11, 7))]


def test_day_close_first_closes_any_earlier_day_still_owed() -> None:
    service = RecordingService(MissedCloses([date(2026, 11, 6), date(2026, 11, 7)], []))
    day_close_job(service, NY, at(2026, 11, 9, 5, 30))  # 00:30 on Nov 9 in New York
    assert service.calls == [
        ("close_day", date(2026, 11, 6)),
        ("close_day", date(2026, 11, 7)),
        ("close_day", date(2026, 11, 8)),
    ]


def test_sunday_close_just_after_sunday_ends_closes_that_sunday() -> None:
    service = RecordingService()
    sunday_close_job(service, NY, at(2026, 11, 9, 5, 1))  # Monday 00:01 in New York
    assert service.calls == [("close_sunday", date(2026, 11, 8))]


def test_review_post_posts_on_sunday_and_skips_when_fired_late_into_monday() -> None:
    service = RecordingService()
    review_post_job(service, NY, at(2026, 11, 8, 13, 0))  # Sunday 08:00 in New York
    review_post_job(service, NY, at(2026, 11, 9, 13, 0))  # Monday: that review is over
    assert service.calls == [("post_review", date(2026, 11, 8))]


def test_a_sunday_job_run_by_hand_refuses_a_weekday() -> None:
    with pytest.raises(DecisionError, match="2026-11-10 is a Tuesday"):
        close_sunday(RecordingService(), date(2026, 11, 10))


def test_last_sunday_before_is_strictly_before() -> None:
    assert last_sunday_before(date(2026, 11, 9)) == date(2026, 11, 8)  # Monday
    assert last_sunday_before(date(2026, 11, 8)) == date(2026, 11, 1)  # Sunday itself
    assert last_sunday_before(date(2026, 11, 14)) == date(2026, 11, 8)  # Saturday


def test_catch_up_on_start_closes_every_missed_day_and_sunday_in_date_order() -> None:
    # down from Thursday Nov 5 to Wednesday Nov 11; the Sunday close of Nov 1 was missed too
    days = [date(2026, 11, d) for d in range(5, 11)]
    service = RecordingService(MissedCloses(days, [date(2026, 11, 1), date(2026, 11, 8)]))
    catch_up_job(service, NY, at(2026, 11, 11, 15, 0))  # Wednesday, 10:00 in New York
    assert service.asked == [date(2026, 11, 11)]
    assert service.calls == [
        ("close_sunday", date(2026, 11, 1)),
        ("close_day", date(2026, 11, 5)),
        ("close_day", date(2026, 11, 6)),
        ("close_day", date(2026, 11, 7)),
        ("close_day", date(2026, 11, 8)),
        ("close_sunday", date(2026, 11, 8)),  # right after its day
        ("close_day", date(2026, 11, 9)),
        ("close_day", date(2026, 11, 10)),
    ]


def test_catch_up_with_nothing_missed_closes_nothing_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = RecordingService()
    with caplog.at_level("INFO", logger="cleanday.scheduler"):
        catch_up_job(service, NY, at(2026, 11, 11, 4, 0))  # still Nov 10 in New York
    assert service.asked == [date(2026, 11, 10)]
    assert service.calls == []
    assert "caught up: every day before 2026-11-10 is closed" in caplog.messages


def test_jobs_fire_in_the_ledgers_time_zone() -> None:
    settings = Settings(CLEANDAY_TIMEZONE="America/New_York")
    scheduler = start_scheduler(RecordingService(), settings, catch_up=False)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {DAY_CLOSE_JOB, REVIEW_POST_JOB, SUNDAY_CLOSE_JOB}
        day = jobs[DAY_CLOSE_JOB].next_run_time.astimezone(NY)
        review = jobs[REVIEW_POST_JOB].next_run_time.astimezone(NY)
        close = jobs[SUNDAY_CLOSE_JOB].next_run_time.astimezone(NY)
        assert (day.hour, day.minute) == (0, 0)
        assert (review.weekday(), review.hour, review.minute) == (6, 8, 0)
        assert (close.weekday(), close.hour, close.minute) == (0, 0, 1)
    finally:
        scheduler.shutdown(wait=False)


def test_with_an_outbox_delivery_the_scheduler_drains_it_every_poll_interval() -> None:
    class Delivery:
        def __init__(self) -> None:
            self.drains = 0

        def drain_now(self) -> list[Any]:
            self.drains += 1
            return []

    delivery = Delivery()
    settings = Settings(CLEANDAY_OUTBOX_POLL_SECONDS=2.5)  # type: ignore[call-arg]
    scheduler = start_scheduler(RecordingService(), settings, catch_up=False, delivery=delivery)
    try:
        job = next(j for j in scheduler.get_jobs() if j.id == OUTBOX_JOB)
        assert job.trigger.interval.total_seconds() == 2.5
        job.func(*job.args)
        assert delivery.drains == 1
    finally:
        scheduler.shutdown(wait=False)
