"""Calendar arithmetic in the ledger's time zone: local days, their bounds, review weeks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ONE_DAY = timedelta(days=1)
SUNDAY = 6  # date.weekday() of a Sunday; review weeks run Monday..Sunday


def zone(tz: str | ZoneInfo) -> ZoneInfo:
    """The ZoneInfo for an IANA name (ZoneInfo caches instances, so this is cheap)."""
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def as_utc(dt: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already (how SQLite keeps them)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def local_date(dt: datetime, tz: str | ZoneInfo) -> date:
    """The calendar date `dt` falls on in time zone `tz`."""
    if dt.tzinfo is None:
        raise ValueError(f"local_date needs a timezone-aware datetime, got {dt.isoformat()}")
    return dt.astimezone(zone(tz)).date()


def day_start(d: date, tz: str | ZoneInfo) -> datetime:
    """The first instant of local day `d`, as an aware UTC datetime.

    fold=0 picks the earlier reading of an ambiguous midnight, and for a midnight that a
    spring-forward skips it resolves to the instant of the transition: either way, the first
    instant whose local date is `d`.
    """
    return datetime.combine(d, time(0), tzinfo=zone(tz)).astimezone(UTC)


def day_bounds(d: date, tz: str | ZoneInfo) -> tuple[datetime, datetime]:
    """`(start, end)` of local day `d` as aware UTC datetimes; `end` is the next day's start.

    A day is 23 or 25 hours long on DST change days, which is why this is not `start + 24h`.
    """
    return day_start(d, tz), day_start(d + ONE_DAY, tz)


def is_sunday(d: date) -> bool:
    return d.weekday() == SUNDAY


def review_sunday(d: date) -> date:
    """The Sunday that closes the review week (Monday..Sunday) containing `d`."""
    return d + timedelta(days=SUNDAY - d.weekday())


def sunday_close_at(sunday: date, tz: str | ZoneInfo) -> datetime:
    """When the review of `sunday` closes: the start of the following Monday, local time."""
    if not is_sunday(sunday):
        raise ValueError(
            f"{sunday.isoformat()} is a {sunday.strftime('%A')}; a review week is named by its "
            f"Sunday ({review_sunday(sunday).isoformat()})"
        )
    return day_start(sunday + ONE_DAY, tz)


def next_review_at(now: datetime, tz: str | ZoneInfo, hour: int) -> datetime:
    """When the next Sunday review is posted after `now`: a Sunday at `hour`, local time (as an
    aware datetime in `tz`, for saying it to the operator in the ledger's time zone)."""
    local = now.astimezone(zone(tz))
    sunday = review_sunday(local.date())
    posted = datetime.combine(sunday, time(hour), tzinfo=zone(tz))
    if posted <= local:
        posted = datetime.combine(sunday + 7 * ONE_DAY, time(hour), tzinfo=zone(tz))
    return posted
