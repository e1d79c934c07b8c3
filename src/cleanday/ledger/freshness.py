"""Listed rows are never older than the latest day that has ended in the ledger's time zone.

A stored state row is what the ladder concluded when it was last folded, and only day closes
and new entries fold it again. Once the ledger has closed yesterday (and, after a Sunday, its
review), every row is current: a close refreshes each behavior whose state the ended day can
change. Until then (an outage, the half minute before the day-close job) a listed row folded
before today began is viewed again at "now" from its stored accumulator, as `show` does.

Cost: one lookup of at most two job keys while the closes are done, which is the usual case;
otherwise a decode and a view per stale row of the list. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday import clock, ladder
from cleanday.domain import BehaviorState, Policy
from cleanday.ledger import store
from cleanday.models import T_JOBS


def stale_before(conn: Connection, tz: str, now: datetime) -> datetime | None:
    """The start of today (local) while a close of yesterday is still owed, else None: a row
    folded before that instant may lag the ladder."""
    yesterday = clock.local_date(now, tz) - timedelta(days=1)
    owed = [f"day_close:{yesterday.isoformat()}"]
    if clock.is_sunday(yesterday):
        owed.append(f"sunday_close:{yesterday.isoformat()}")
    done = conn.execute(
        sa.select(sa.func.count()).select_from(T_JOBS).where(T_JOBS.c.job_key.in_(owed))
    ).scalar_one()
    if int(done) == len(owed):
        return None
    return clock.day_start(yesterday + timedelta(days=1), tz)


def current_states(
    conn: Connection,
    names: Sequence[str],
    policy: Policy,
    now: datetime,
    cache: store.AccumulatorCache | None = None,
) -> dict[str, BehaviorState]:
    """What the ladder says about each behavior at `now`, from its folded accumulator; `policy`
    is the service policy with the Work Orders' idle rules merged in (`policy_of`). With the
    ledger's `cache`, a list read again while the close is owed decodes nothing twice."""
    cache = cache or store.AccumulatorCache()
    rows = store.state_rows(conn, names, acc_text=True)
    return {
        name: ladder.view(cache.decode(name, r.accumulator_text), policy, now)
        for name, r in rows.items()
    }
