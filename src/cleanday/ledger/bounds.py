"""The bounds of what the ledger accepts from outside: counts a JSON reader anywhere can hold,
money and times that are finite and sane, text that is valid Unicode.

A body outside them is refused naming the field (422), before anything is written: today's
alternatives were `Infinity` stored on SQLite, a 500 on PostgreSQL, an integer overflow, and
an encoding error from the database driver.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from cleanday.errors import OutOfRange

# the largest integer a JSON number keeps exactly in every reader (an IEEE double)
MAX_COUNT = 2**53
# a cost beyond this is a bug or an attack, not a bill
MAX_COST_USD = 1e9
# the years a run can have happened in; the clock's dates, too
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2199, 12, 31)
EARLIEST = datetime(FIRST_DAY.year, 1, 1, tzinfo=UTC)
LATEST = datetime(LAST_DAY.year + 1, 1, 1, tzinfo=UTC)


def check_day(d: date, what: str = "day") -> date:
    """`d`, or OutOfRange naming the range the ledger's clock covers."""
    if not FIRST_DAY <= d <= LAST_DAY:
        raise OutOfRange(
            f"{what} {d.isoformat()} is out of range: the ledger's days run from "
            f"{FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}"
        )
    return d


def _check_stamp(at: datetime) -> datetime:
    if not EARLIEST <= at < LATEST:
        raise ValueError(
            f"{at.isoformat()} is out of range: a time from {EARLIEST.year} to {LAST_DAY.year}"
        )
    return at


Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Cost = Annotated[float, Field(ge=0, le=MAX_COST_USD, allow_inf_nan=False)]
Millis = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]
Stamp = Annotated[AwareDatetime, AfterValidator(_check_stamp)]


def check_value(value: Any, where: str = "body") -> None:
    """Raise ValueError naming the first string that is not valid Unicode (a lone surrogate,
    which no database stores) or holds a NUL (which PostgreSQL does not), or number that is
    not finite, anywhere inside `value`."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{where}: not valid Unicode (a lone surrogate at character {exc.start})"
            ) from None
        if "\x00" in value:  # PostgreSQL stores no NUL in text or JSON
            raise ValueError(f"{where}: contains a NUL character (\\u0000)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not a finite number")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_value(k, f"{where} key")
            check_value(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_value(v, f"{where}[{i}]")


class StrictIn(BaseModel):
    """A request body: no unknown field, no infinite number, no invalid Unicode anywhere."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        check_value(data)
        return data
