"""What waits for the operator, on top of every page: proposals to sign off, staged items to
release, this Sunday's candidates, quarantined behaviors and anything stuck in the outbox.

Each list is read oldest first and cut at `limit`, with its full count beside it, so a backlog
of thousands shows its size without rendering all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday import clock
from cleanday.domain import Decision, EntryKind, Policy, Status
from cleanday.models import T_ENTRIES, T_JOBS, T_OUTBOX, T_PENDING, T_RUNS, T_STATES
from cleanday.pane.overview import Progress, progress, utc

LIMIT = 20


@dataclass(frozen=True)
class Item:
    behavior: str
    item_id: str
    run_id: str
    kind: str  # proposal | staged
    payload: dict[str, Any]
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class Listed:
    """The first `limit` of a list and how many there are in all."""

    items: list[Any]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.items)


@dataclass(frozen=True)
class Candidate:
    name: str
    tier: str
    progress: Progress
    tier_since: datetime | None
    runs_this_week: int
    failures_this_week: int
    last_failure: date | None
    decision: Decision | None
    decided_by: str | None


@dataclass(frozen=True)
class Quarantined:
    name: str
    tier: str
    since: datetime | None
    gate: str | None
    reason: str | None


@dataclass(frozen=True)
class OutboxLine:
    """Undelivered rows of one outbox channel."""

    channel: str
    waiting: int
    oldest: datetime
    attempts: int  # the most any of them has been tried
    last_error: str | None


@dataclass(frozen=True)
class Review:
    week: date  # the review's Sunday
    today: date
    candidates: Listed  # today's candidates (none once the review has closed)
    closed: bool
    promoted: tuple[str, ...] = ()  # what its close did
    held: tuple[str, ...] = ()

    @property
    def open_today(self) -> bool:
        """Decisions are taken on the review's Sunday, until it closes."""
        return self.today == self.week and not self.closed


@dataclass(frozen=True)
class Waiting:
    proposals: Listed
    staged: Listed
    review: Review
    quarantined: Listed
    outbox: list[OutboxLine] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return not (
            self.proposals.total
            or self.staged.total
            or self.review.candidates.total
            or self.quarantined.total
            or self.outbox
        )


def waiting(conn: Connection, policy: Policy, now: datetime, limit: int = LIMIT) -> Waiting:
    return Waiting(
        proposals=items(conn, "proposal", now, limit),
        staged=items(conn, "staged", now, limit),
        review=review(conn, policy, now, None, limit, 0),
        quarantined=quarantined(conn, limit),
        outbox=outbox(conn),
    )


def items(
    conn: Connection, kind: str, now: datetime, limit: int, behavior: str | None = None
) -> Listed:
    """Pending proposals or staged items, oldest first; a staged item past its expiry no
    longer waits (it expires with no penalty)."""
    where = [T_PENDING.c.status == "pending", T_PENDING.c.kind == kind]
    # a retired behavior's items wait for nothing: it gets no more permits
    retired = sa.select(T_STATES.c.behavior).where(T_STATES.c.status == Status.RETIRED.value)
    where.append(T_PENDING.c.behavior.not_in(retired))
    if behavior is not None:
        where.append(T_PENDING.c.behavior == behavior)
    if kind == "staged":
        where.append(sa.or_(T_PENDING.c.expires_at.is_(None), T_PENDING.c.expires_at > now))
    total = conn.execute(sa.select(sa.func.count()).select_from(T_PENDING).where(*where))
    rows = conn.execute(
        sa.select(T_PENDING).where(*where).order_by(T_PENDING.c.id).limit(limit)
    ).all()
    found = [
        Item(
            r.behavior,
            r.item_id,
            r.run_id,
            r.kind,
            dict(r.payload or {}),
            utc(r.created_at),
            utc(r.expires_at) if r.expires_at is not None else None,
        )
        for r in rows
    ]
    return Listed(found, int(total.scalar_one()))


def review(
    conn: Connection,
    policy: Policy,
    now: datetime,
    week: date | None,
    limit: int,
    offset: int,
) -> Review:
    """The review of `week` (default: this week's Sunday): its candidates with the evidence
    for each, and the decision recorded so far."""
    today = clock.local_date(now, policy.timezone)
    sunday = week or clock.review_sunday(today)
    closed = conn.execute(
        sa.select(T_JOBS.c.result).where(T_JOBS.c.job_key == f"sunday_close:{sunday}")
    ).first()
    if closed is not None:
        done = dict(closed.result or {})
        promoted, held = tuple(done.get("promoted", ())), tuple(done.get("held", ()))
        return Review(sunday, today, Listed([], 0), True, promoted, held)
    where = [T_STATES.c.candidate.is_(True), T_STATES.c.status == Status.ACTIVE.value]
    total = conn.execute(sa.select(sa.func.count()).select_from(T_STATES).where(*where))
    rows = conn.execute(
        sa.select(
            T_STATES.c.behavior,
            T_STATES.c.tier,
            T_STATES.c.clean_days,
            T_STATES.c.tier_since,
            T_STATES.c.last_gate_failure,
        )
        .where(*where)
        .order_by(T_STATES.c.behavior)
        .limit(limit)
        .offset(offset)
    ).all()
    names = [r.behavior for r in rows]
    decided = decisions(conn, policy, sunday, names)
    runs = week_runs(conn, policy, sunday, names)
    found = [
        Candidate(
            name=r.behavior,
            tier=r.tier,
            progress=progress(r.tier, r.clean_days, policy),
            tier_since=utc(r.tier_since) if r.tier_since is not None else None,
            runs_this_week=runs.get(r.behavior, (0, 0))[0],
            failures_this_week=runs.get(r.behavior, (0, 0))[1],
            last_failure=_date(r.last_gate_failure),
            decision=decided.get(r.behavior, (None, None))[0],
            decided_by=decided.get(r.behavior, (None, None))[1],
        )
        for r in rows
    ]
    return Review(sunday, today, Listed(found, int(total.scalar_one())), False)


def decisions(
    conn: Connection, policy: Policy, sunday: date, names: list[str]
) -> dict[str, tuple[Decision, str | None]]:
    """The decision that stands (and who made it) per behavior for the review of `sunday`."""
    if not names:
        return {}
    start, _ = clock.day_bounds(sunday - 6 * clock.ONE_DAY, policy.timezone)
    end = clock.sunday_close_at(sunday, policy.timezone)
    rows = conn.execute(
        sa.select(T_ENTRIES.c.behavior, T_ENTRIES.c.data)
        .where(
            T_ENTRIES.c.kind == EntryKind.DECISION.value,
            T_ENTRIES.c.behavior.in_(names),
            T_ENTRIES.c.at >= start,
            T_ENTRIES.c.at <= end,
        )
        .order_by(T_ENTRIES.c.seq)
    ).all()
    out: dict[str, tuple[Decision, str | None]] = {}
    for behavior, data in rows:
        if data.get("week") == sunday.isoformat() and not data.get("superseded_by"):
            by = data.get("by")
            door = data.get("door")
            out[behavior] = (Decision(data["decision"]), f"{by} ({door})" if door else by)
    return out


def week_runs(
    conn: Connection, policy: Policy, sunday: date, names: list[str]
) -> dict[str, tuple[int, int]]:
    """(runs, runs with a failed gate) of each behavior in the review week (Monday..Sunday)."""
    if not names:
        return {}
    start, _ = clock.day_bounds(sunday - 6 * clock.ONE_DAY, policy.timezone)
    end = clock.sunday_close_at(sunday, policy.timezone)
    failed = sa.case((T_RUNS.c.outcome.in_(("failed", "blocked")), 1), else_=0)
    rows = conn.execute(
        sa.select(T_RUNS.c.behavior, sa.func.count(), sa.func.sum(failed))
        .where(
            T_RUNS.c.behavior.in_(names),
            T_RUNS.c.finished_at >= start,
            T_RUNS.c.finished_at < end,
        )
        .group_by(T_RUNS.c.behavior)
    ).all()
    return {b: (int(n), int(f or 0)) for b, n, f in rows}


def quarantined(conn: Connection, limit: int) -> Listed:
    where = T_STATES.c.status == Status.QUARANTINED.value
    total = conn.execute(sa.select(sa.func.count()).select_from(T_STATES).where(where))
    rows = conn.execute(
        sa.select(
            T_STATES.c.behavior,
            T_STATES.c.tier,
            T_STATES.c.quarantined_at,
            T_STATES.c.last_failure_gate,
            T_STATES.c.last_failure_reason,
        )
        .where(where)
        .order_by(T_STATES.c.behavior)
        .limit(limit)
    ).all()
    found = [
        Quarantined(
            r.behavior,
            r.tier,
            utc(r.quarantined_at) if r.quarantined_at is not None else None,
            r.last_failure_gate,
            r.last_failure_reason,
        )
        for r in rows
    ]
    return Listed(found, int(total.scalar_one()))


def outbox(conn: Connection) -> list[OutboxLine]:
    """What the outbox still holds, per channel."""
    rows = conn.execute(
        sa.select(
            T_OUTBOX.c.channel,
            sa.func.count(),
            sa.func.min(T_OUTBOX.c.created_at),
            sa.func.max(T_OUTBOX.c.attempts),
        )
        .where(T_OUTBOX.c.delivered_at.is_(None))
        .group_by(T_OUTBOX.c.channel)
        .order_by(T_OUTBOX.c.channel)
    ).all()
    out = []
    for channel, n, oldest, attempts in rows:
        error = conn.execute(
            sa.select(T_OUTBOX.c.last_error)
            .where(
                T_OUTBOX.c.channel == channel,
                T_OUTBOX.c.delivered_at.is_(None),
                T_OUTBOX.c.last_error.is_not(None),
            )
            .order_by(T_OUTBOX.c.id.desc())
            .limit(1)
        ).scalar()
        out.append(OutboxLine(channel, int(n), utc(oldest), int(attempts or 0), error))
    return out


def _date(value: date | str | None) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value
