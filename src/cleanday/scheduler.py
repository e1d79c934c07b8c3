"""The ledger's clocks on APScheduler: day close, Sunday review post, Sunday close, and the
outbox delivery of whatever was not delivered right after its commit.

Every job is idempotent (the service keys day closes by date and Sunday closes by week), so a
job that runs twice, or by hand for a given date, changes nothing the second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from cleanday.config import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

DAY_CLOSE_JOB = "cleanday.day_close"
REVIEW_POST_JOB = "cleanday.review_post"
SUNDAY_CLOSE_JOB = "cleanday.sunday_close"
CATCH_UP_JOB = "cleanday.catch_up"
OUTBOX_JOB = "cleanday.outbox"

# a job that could not run at its time (service busy or asleep) still runs within an hour
_GRACE_SECONDS = 3600


def _utc_now() -> datetime:
    return datetime.now(UTC)


def local_today(clock: Clock, tz: ZoneInfo) -> date:
    return clock().astimezone(tz).date()


def last_sunday_before(d: date) -> date:
    """The latest Sunday strictly before `d`."""
    return d - timedelta(days=(d.weekday() + 1) % 7 or 7)


def close_day(service: Any, day: date) -> Any:
    """Close `day` (a calendar day in the ledger's time zone)."""
    log.info("day close for %s", day.isoformat())
    return service.close_day(day)


def post_review(service: Any, sunday: date) -> Any:
    """Write the Sunday review posting (Notion rows, Slack summary) into the outbox."""
    _require_sunday(sunday)
    log.info("review post for the week of %s", sunday.isoformat())
    return service.post_review(sunday)


def close_sunday(service: Any, sunday: date) -> Any:
    """Close the review of `sunday`: promote every candidate marked Promote."""
    _require_sunday(sunday)
    log.info("Sunday close for %s", sunday.isoformat())
    return service.close_sunday(sunday)


def _require_sunday(d: date) -> None:
    if d.weekday() != 6:
        from cleanday.errors import DecisionError

        raise DecisionError(
            f"{d.isoformat()} is a {d.strftime('%A')}; name the review week by its Sunday"
        )


def day_close_job(service: Any, tz: ZoneInfo, clock: Clock = _utc_now) -> Any:
    """Runs just after local midnight: closes yesterday, after any earlier day or Sunday still
    owed (a night the job could not run within its grace time): the listed rows count on every
    ended day being closed once yesterday is (`cleanday.ledger.freshness`)."""
    yesterday = local_today(clock, tz) - timedelta(days=1)
    close_owed(service, yesterday)
    return close_day(service, yesterday)


def review_post_job(service: Any, tz: ZoneInfo, clock: Clock = _utc_now) -> Any:
    """Runs Sunday morning: posts today's candidates."""
    today = local_today(clock, tz)
    if today.weekday() != 6:  # fired late (misfire grace) into Monday: that review has closed
        log.warning("review post skipped: %s is not a Sunday", today.isoformat())
        return None
    return post_review(service, today)


def sunday_close_job(service: Any, tz: ZoneInfo, clock: Clock = _utc_now) -> Any:
    """Runs just after Sunday ends: closes the review of the Sunday that just ended."""
    return close_sunday(service, last_sunday_before(local_today(clock, tz)))


def catch_up_job(service: Any, tz: ZoneInfo, clock: Clock = _utc_now) -> None:
    """On start, close what a stopped service missed (`close_owed`)."""
    close_owed(service, local_today(clock, tz))


def close_owed(service: Any, before: date) -> None:
    """Close, in date order, every day before `before` not yet closed and, right after each
    Sunday's day, that Sunday's review if it is not closed either. Both closes are idempotent
    under the chain lock, so two instances catching up at once (or two starts) close each
    only once."""
    missed = service.missed_closes(before)
    days, sundays = set(missed.days), set(missed.sundays)
    if not (days or sundays):
        log.info("caught up: every day before %s is closed", before.isoformat())
        return
    log.info("catching up: %d day close(s), %d Sunday close(s)", len(days), len(sundays))
    for d in sorted(days | sundays):
        if d in days:
            close_day(service, d)
        if d in sundays:
            close_sunday(service, d)


def outbox_job(delivery: Any) -> Any:
    """Deliver what is left in the outbox for the channels this process can deliver to."""
    return delivery.drain_now()


def start_scheduler(
    service: Any,
    settings: Settings,
    *,
    clock: Clock = _utc_now,
    catch_up: bool = True,
    delivery: Any = None,
) -> BackgroundScheduler:
    """Start the ledger's jobs in its time zone and return the running scheduler; with an
    outbox `delivery` (`cleanday.outbox.OutboxDelivery`), its job too."""
    # the ledger's time zone is its policy's; settings only name it when the service has none
    policy = getattr(service, "policy", None)
    tz = ZoneInfo(policy.timezone if policy is not None else settings.timezone)
    scheduler = BackgroundScheduler(
        timezone=tz,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": _GRACE_SECONDS},
    )
    args = (service, tz, clock)
    scheduler.add_job(
        day_close_job, CronTrigger(hour=0, minute=0, second=30, timezone=tz), args,
        id=DAY_CLOSE_JOB, name="day close (yesterday)", replace_existing=True,
    )  # fmt: skip
    scheduler.add_job(
        review_post_job,
        CronTrigger(day_of_week="sun", hour=settings.review_hour, minute=0, timezone=tz), args,
        id=REVIEW_POST_JOB, name="Sunday review post", replace_existing=True,
    )  # fmt: skip
    scheduler.add_job(
        sunday_close_job, CronTrigger(day_of_week="mon", hour=0, minute=1, timezone=tz), args,
        id=SUNDAY_CLOSE_JOB, name="Sunday close", replace_existing=True,
    )  # fmt: skip
    if delivery is not None:
        scheduler.add_job(
            outbox_job, IntervalTrigger(seconds=settings.outbox_poll_s), (delivery,),
            id=OUTBOX_JOB, name="outbox delivery", replace_existing=True,
        )  # fmt: skip
    if catch_up:
        scheduler.add_job(catch_up_job, args=args, id=CATCH_UP_JOB, name="catch up on start")
    scheduler.start()
    return scheduler
