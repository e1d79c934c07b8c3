"""The day close: after local midnight, fold what is not yet folded and refresh every behavior
whose state the ended day can change. Idempotent by date."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa

from cleanday import clock
from cleanday.domain import EntryKind, IdlePolicy
from cleanday.errors import DecisionError
from cleanday.ledger import items, store
from cleanday.ledger.bounds import check_day
from cleanday.ledger.core import LedgerCore
from cleanday.ledger.folding import fold, store_folds
from cleanday.ledger.schemas import DayCloseResult
from cleanday.models import T_BEHAVIORS, T_JOBS, T_STATES


def close_day(ledger: LedgerCore, d: date) -> DayCloseResult:
    """Close local day `d`: fold what is not yet folded and refresh every behavior that had
    entries that day (plus idle-breaking behaviors). Costs in proportion to that day's
    entries; idempotent by date."""
    check_day(d)
    t0 = time.perf_counter()
    now = ledger.now()
    job = f"day_close:{d}"
    start, end = clock.day_bounds(d, ledger.policy.timezone)
    if now < end:
        raise DecisionError(f"day {d} is not over yet in {ledger.policy.timezone}")
    with ledger.unit_of_work(now) as uow:
        conn = uow.conn
        done = store.job_result(conn, job)
        if done is not None:
            return DayCloseResult.model_validate({**done, "already_closed": True})
        policy = ledger.policy_of(conn)
        pending = store.primitive_entries_after(conn, store.folded_seq(conn), uow.head.seq)
        touched = store.behaviors_with_entries_between(conn, start, end) | set(pending)
        if policy.idle == IdlePolicy.BREAK:
            # every idle day matters to every behavior
            touched |= set(conn.execute(sa.select(T_STATES.c.behavior)).scalars())
        else:
            touched |= {n for n, p in policy.idle_by_behavior.items() if p == IdlePolicy.BREAK}
        rows = store.state_rows(conn, sorted(touched))
        folds = [fold(conn, rows[n], pending.get(n, []), policy, now) for n in rows]
        store_folds(uow, rows, folds)
        store.set_folded_seq(conn, uow.head.seq)
        expired = items.expire_items(uow)
        result = DayCloseResult(
            date=d,
            already_closed=False,
            behaviors=len(folds),
            entries_folded=sum(f.applied for f in folds),
            demoted=sorted(
                {f.name for f in folds for x in f.derived if x.kind == EntryKind.DEMOTED}
            ),
            quarantined=sorted(
                {f.name for f in folds for x in f.derived if x.kind == EntryKind.QUARANTINED}
            ),
            expired_items=expired,
            seconds=round(time.perf_counter() - t0, 4),
        )
        store.record_job(conn, job, now, ledger.now(), result.model_dump(mode="json"))
    return result


@dataclass(frozen=True)
class MissedCloses:
    """The closes a stopped service owes, each list in date order."""

    days: list[date]
    sundays: list[date]


def missed_closes(ledger: LedgerCore, today: date) -> MissedCloses:
    """Every day before `today` (local) not yet closed, and every Sunday whose review is not:
    from the first one ever closed, or from the first registration when none was, so a gap
    left anywhere in between (an outage, an old catch-up that closed only yesterday) is owed
    too. One query of the job keys, however many there are."""
    with ledger.engine.connect() as conn:
        first = conn.execute(sa.select(sa.func.min(T_BEHAVIORS.c.registered_at))).scalar()
        keys = conn.execute(
            sa.select(T_JOBS.c.job_key).where(
                sa.or_(
                    T_JOBS.c.job_key.like("day_close:%"), T_JOBS.c.job_key.like("sunday_close:%")
                )
            )
        ).scalars()
        closed: dict[str, set[date]] = {"day_close": set(), "sunday_close": set()}
        for key in keys:
            kind, _, day = str(key).partition(":")
            closed[kind].add(date.fromisoformat(day))
    if first is None:
        return MissedCloses([], [])
    registered = clock.local_date(clock.as_utc(first), ledger.policy.timezone)

    def owed(done: set[date], sundays_only: bool) -> list[date]:
        d = min(done, default=registered)
        out = []
        while d < today:
            if d not in done and (not sundays_only or clock.is_sunday(d)):
                out.append(d)
            d += timedelta(days=1)
        return out

    return MissedCloses(owed(closed["day_close"], False), owed(closed["sunday_close"], True))
