"""The budget on SQLite: every transaction inline under the database's write lock.

A reservation takes `BEGIN IMMEDIATE`, so the check of spend + estimate against the cap and
the insert are one step across threads and processes. The statements run straight on the
sqlite3 cursor: SQLAlchemy's per-statement machinery costs more than SQLite itself here, on
every model call. A local write takes well under a millisecond, so the event-loop variants run
inline too: no worker thread, and an answered call's settlement is written before it returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine

from cleanday.budget.base import (
    BindingRow,
    Prepare,
    PresetHead,
    Reservation,
    Settlement,
    reserve_in,
)
from cleanday.budget.periods import as_utc
from cleanday.budget.sql import (
    BINDING,
    LATEST_PRESET,
    LIVE,
    RESERVE,
    SETTLE,
    SETTLED,
    SPENT,
    STORE_TOTAL,
    TOTAL,
)
from cleanday.errors import BudgetExceeded

T = TypeVar("T")


def _ts(dt: datetime) -> str:
    # the text form SQLAlchemy stores a DateTime in on SQLite, so that comparisons line up
    return as_utc(dt).strftime("%Y-%m-%d %H:%M:%S.%f")


class SqliteTx:
    """The budget statements on a sqlite3 cursor inside `BEGIN IMMEDIATE`."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def binding(self, behavior: str) -> BindingRow | None:
        self.cur.execute(BINDING, {"behavior": behavior})
        row = self.cur.fetchone()
        if row is None:
            return None
        return BindingRow(
            row[0],
            row[1],
            float(row[2]),
            row[3],
            json.loads(row[4]),
            json.loads(row[5]),
            row[6],
            row[7],
        )

    def latest_preset(self, behavior: str) -> PresetHead | None:
        self.cur.execute(LATEST_PRESET, {"behavior": behavior})
        row = self.cur.fetchone()
        if row is None:
            return None
        created = datetime.fromisoformat(row[3])
        return PresetHead(
            row[0],
            row[1],
            row[2],
            created if created.tzinfo else created.replace(tzinfo=UTC),
            row[4],
        )

    def spent(self, behavior: str, start: datetime, end: datetime, live_since: datetime) -> float:
        params = {
            "behavior": behavior,
            "start": _ts(start),
            "end": _ts(end),
            "live_since": _ts(live_since),
        }
        self.cur.execute(SPENT, params)
        return float(self.cur.fetchone()[0])

    def running_spent(
        self, behavior: str, start: datetime, end: datetime, live_since: datetime
    ) -> float:
        key = {"behavior": behavior, "start": _ts(start), "end": _ts(end)}
        self.cur.execute(TOTAL, {"behavior": behavior})
        row = self.cur.fetchone()
        if row is not None and (row[0], row[1]) == (key["start"], key["end"]):
            settled = float(row[2])
        else:  # a new period (or cadence, or no total yet): sum it once
            self.cur.execute(SETTLED, key)
            settled = float(self.cur.fetchone()[0])
            self.cur.execute(STORE_TOTAL, {**key, "settled": settled})
        self.cur.execute(LIVE, {**key, "live_since": _ts(live_since)})
        return settled + float(self.cur.fetchone()[0])

    def insert_reservation(
        self,
        behavior: str,
        at: datetime,
        run_id: str | None,
        transport: str,
        model: str,
        estimate: float,
    ) -> int:
        params = {
            "behavior": behavior,
            "at": _ts(at),
            "run_id": run_id,
            "transport": transport,
            "model": model,
            "estimate": estimate,
        }
        self.cur.execute(RESERVE, params)
        return int(self.cur.fetchone()[0])


class SqliteBudget:
    """`BudgetBackend` on SQLite."""

    def __init__(self, engine: Engine, timezone: str) -> None:
        self.engine = engine
        self.timezone = timezone

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """A cursor inside `BEGIN IMMEDIATE`: one budget transaction at a time. A refused
        reservation commits too: it wrote nothing but the running total it summed, which the
        next check of a runaway loop would otherwise sum again."""
        with self.engine.connect() as sa_conn:
            cur = sa_conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BudgetExceeded:
                cur.execute("COMMIT")
                raise
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def reserve(
        self, behavior: str, prepare: Prepare[T], now: datetime, run_id: str | None
    ) -> tuple[T, Reservation]:
        with self._write() as cur:
            return reserve_in(SqliteTx(cur), behavior, prepare, now, self.timezone, run_id)

    async def reserve_async(
        self, behavior: str, prepare: Prepare[T], now: datetime, run_id: str | None
    ) -> tuple[T, Reservation]:
        return self.reserve(behavior, prepare, now, run_id)

    def settle(self, reservation: Reservation, settlement: Settlement, at: datetime) -> None:
        with self._write() as cur:
            cur.execute(SETTLE, settlement.params(reservation, _ts(at)))

    async def settle_async(
        self, reservation: Reservation, settlement: Settlement, at: datetime
    ) -> None:
        self.settle(reservation, settlement, at)

    def settle_soon(self, reservation: Reservation, settlement: Settlement, at: datetime) -> None:
        self.settle(reservation, settlement, at)

    async def drain(self) -> None:
        return None
