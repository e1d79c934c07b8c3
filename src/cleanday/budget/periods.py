"""Budget periods: a key's day, week or month, from 00:00 in the ledger's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def period_bounds(cadence: str, now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The budget period containing `now`: starts 00:00 local time, as aware UTC datetimes."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    start: date
    end: date
    if cadence == "day":
        start, end = today, today + timedelta(days=1)
    elif cadence == "week":
        start = today - timedelta(days=today.weekday())
        end = start + timedelta(days=7)
    elif cadence == "month":
        start = today.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown cadence {cadence!r}; use day, week or month")
    return (
        datetime.combine(start, time(), tzinfo=zone).astimezone(UTC),
        datetime.combine(end, time(), tzinfo=zone).astimezone(UTC),
    )


def as_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("expected a timezone-aware datetime")
    return dt.astimezone(UTC)
