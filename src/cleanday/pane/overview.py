"""The overview page: one page of behaviors with everything the operator reads at a glance.

A page costs the same with 10,000 behaviors as with 50: the behaviors of the page are chosen
first (the state rows, filtered and ordered by name in the database), then each further table
is read once for that page alone — the last failure's every reason from its run, the last run,
the spend of the period.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday.budget.base import RESERVATION_TTL
from cleanday.budget.periods import period_bounds
from cleanday.domain import EntryKind, Policy, Status, Tier
from cleanday.ledger import freshness
from cleanday.ledger.rows import state_values
from cleanday.models import T_BEHAVIORS, T_ENTRIES, T_RUNS, T_STATES
from cleanday.pane.next_runs import NextRun, NextRuns
from cleanday.router.tables import KeySpend, RoutingBinding

TIERS: tuple[str, ...] = tuple(t.value for t in Tier)
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
PER_PAGE = 50
MAX_PER_PAGE = 500

_SPEND = KeySpend.__table__  # type: ignore[attr-defined]
_BINDINGS = RoutingBinding.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Filters:
    """What the operator asked to see. No tier or status given: every tier, every status but
    retired; retired behaviors show when asked for (`retired`, or the status itself)."""

    tiers: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    retired: bool = False
    search: str = ""
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def parse(
        cls,
        tiers: Iterable[str] = (),
        statuses: Iterable[str] = (),
        retired: bool = False,
        search: str = "",
        page: int = 1,
        per_page: int = PER_PAGE,
    ) -> Filters:
        """Filters from a query string: unknown tiers and statuses are dropped, numbers
        clamped, so a hand-edited URL still shows a page."""
        return cls(
            tiers=tuple(t for t in TIERS if t in set(tiers)),
            statuses=tuple(s for s in STATUSES if s in set(statuses)),
            retired=retired,
            search=search.strip()[:64],
            page=max(1, page),
            per_page=min(max(1, per_page), MAX_PER_PAGE),
        )

    def where(self) -> list[sa.ColumnElement[bool]]:
        clauses: list[sa.ColumnElement[bool]] = []
        if self.tiers:
            clauses.append(T_STATES.c.tier.in_(self.tiers))
        if self.statuses:
            clauses.append(T_STATES.c.status.in_(self.statuses))
        elif not self.retired:
            clauses.append(T_STATES.c.status != Status.RETIRED.value)
        if self.search:
            escaped = self.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append(T_STATES.c.behavior.like(f"%{escaped}%", escape="\\"))
        return clauses

    def query(self, **changes: Any) -> dict[str, Any]:
        """These filters as query parameters (for links to other pages of the same list)."""
        values = {
            "tier": list(self.tiers),
            "status": list(self.statuses),
            "retired": "1" if self.retired else None,
            "q": self.search or None,
            "page": self.page if self.page != 1 else None,
            "per": self.per_page if self.per_page != PER_PAGE else None,
        }
        values.update(changes)
        return {k: v for k, v in values.items() if v not in (None, [], "")}


@dataclass(frozen=True)
class Progress:
    """How far a behavior is from its next candidacy (None at Wings: nothing above it)."""

    clean_days: int
    needed: int | None
    next_tier: str | None

    @property
    def reached(self) -> bool:
        return self.needed is not None and self.clean_days >= self.needed

    @property
    def remaining(self) -> int:
        return 0 if self.needed is None else max(self.needed - self.clean_days, 0)


def progress(tier: str, clean_days: int, policy: Policy) -> Progress:
    t = Tier(tier)
    if t is Tier.WINGS:
        return Progress(clean_days, None, None)
    needed = policy.wings_threshold if t is Tier.C else policy.clean_day_threshold
    return Progress(clean_days, needed, t.up().value)


@dataclass(frozen=True)
class Failure:
    on: date
    gate: str
    reasons: tuple[str, ...]  # every failed gate of the run, "gate: reason"
    run_id: str | None


@dataclass(frozen=True)
class LastRun:
    run_id: str
    workflow_id: str | None
    finished_at: datetime
    outcome: str
    summary: str | None


@dataclass(frozen=True)
class Spend:
    spent_usd: float
    cap_usd: float
    cadence: str
    period_end: datetime

    @property
    def share(self) -> float:
        return self.spent_usd / self.cap_usd if self.cap_usd else 0.0


@dataclass(frozen=True)
class Row:
    name: str
    tier: str
    status: str
    candidate: bool
    progress: Progress
    failure: Failure | None
    spend: Spend | None
    last_run: LastRun | None
    next_run: NextRun
    tier_since: datetime | None


@dataclass(frozen=True)
class Page:
    filters: Filters
    rows: list[Row]
    total: int  # behaviors matching the filters
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # tier/status -> n

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.filters.per_page))

    @property
    def first(self) -> int:
        return 0 if not self.rows else (self.filters.page - 1) * self.filters.per_page + 1

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


def overview(
    conn: Connection, filters: Filters, policy: Policy, now: datetime, next_runs: NextRuns
) -> Page:
    where = filters.where()
    total = conn.execute(
        sa.select(sa.func.count()).select_from(T_STATES).where(*where)
    ).scalar_one()
    # the page's names first, in the primary key's order: sorting whole joined rows (their Work
    # Orders included) would cost as much as the list of every behavior
    page_names = (
        sa.select(T_STATES.c.behavior)
        .where(*where)
        .order_by(T_STATES.c.behavior)
        .limit(filters.per_page)
        .offset((filters.page - 1) * filters.per_page)
    )
    names = list(conn.execute(page_names).scalars())
    rows = conn.execute(
        sa.select(
            T_STATES.c.behavior,
            T_STATES.c.tier,
            T_STATES.c.status,
            T_STATES.c.clean_days,
            T_STATES.c.candidate,
            T_STATES.c.last_gate_failure,
            T_STATES.c.last_failure_gate,
            T_STATES.c.last_failure_reason,
            T_STATES.c.last_failure_run,
            T_STATES.c.tier_since,
            T_STATES.c.updated_at,
            T_BEHAVIORS.c.work_order,
        )
        .join(T_BEHAVIORS, T_BEHAVIORS.c.name == T_STATES.c.behavior)
        .where(T_STATES.c.behavior.in_(names))
        .order_by(T_STATES.c.behavior)
    ).all()
    rows = current(conn, rows, policy, now)
    reasons = failure_reasons(conn, [(r.behavior, r.last_failure_run) for r in rows])
    runs = last_runs(conn, names)
    spend = spend_of(conn, names, now, policy.timezone)
    out = []
    for r in rows:
        failure = None
        if r.last_gate_failure is not None:
            on = r.last_gate_failure
            failure = Failure(
                on=date.fromisoformat(on) if isinstance(on, str) else on,
                gate=r.last_failure_gate or "",
                reasons=reasons.get(r.behavior)
                or (f"{r.last_failure_gate}: {r.last_failure_reason or ''}",),
                run_id=r.last_failure_run,
            )
        out.append(
            Row(
                name=r.behavior,
                tier=r.tier,
                status=r.status,
                candidate=bool(r.candidate),
                progress=progress(r.tier, r.clean_days, policy),
                failure=failure,
                spend=spend.get(r.behavior),
                last_run=runs.get(r.behavior),
                next_run=next_runs.lookup(
                    r.behavior,
                    (r.work_order or {}).get("trigger", {}),
                    r.status == Status.ACTIVE.value,
                    now,
                ),
                tier_since=utc(r.tier_since) if r.tier_since is not None else None,
            )
        )
    return Page(filters, out, int(total), counts(conn))


def current(conn: Connection, rows: Sequence[Any], policy: Policy, now: datetime) -> list[Any]:
    """The page's rows, each one folded before the latest ended day viewed again at `now`
    (`cleanday.ledger.freshness`): while the closes are done, one lookup and the rows as read.
    The filters and counts still read the stored columns until the close refreshes them."""
    stale = freshness.stale_before(conn, policy.timezone, now)
    if stale is None:
        return list(rows)
    old = [r.behavior for r in rows if utc(r.updated_at) < stale]
    states = freshness.current_states(conn, old, policy, now) if old else {}
    return [
        r
        if r.behavior not in states
        else SimpleNamespace(**{**r._mapping, **state_values(states[r.behavior])})
        for r in rows
    ]


def counts(conn: Connection) -> dict[str, dict[str, int]]:
    """How many behaviors have each tier and each status (for the filters' labels)."""
    found: dict[str, dict[str, int]] = {"tier": {}, "status": {}}
    for tier, status, n in conn.execute(
        sa.select(T_STATES.c.tier, T_STATES.c.status, sa.func.count()).group_by(
            T_STATES.c.tier, T_STATES.c.status
        )
    ):
        if status != Status.RETIRED.value:
            found["tier"][tier] = found["tier"].get(tier, 0) + n
        found["status"][status] = found["status"].get(status, 0) + n
    return found


def failure_reasons(
    conn: Connection, runs: Sequence[tuple[str, str | None]]
) -> dict[str, tuple[str, ...]]:
    """Every failed gate's reason of each behavior's run, read from the run's ledger entry
    (the state row keeps the first gate only)."""
    wanted = {(b, f"run:{r}") for b, r in runs if r}
    if not wanted:
        return {}
    # by (behavior, key) alone, so that the unique index answers: with the kind in the query
    # SQLite would walk every run report by kind instead
    found = conn.execute(
        sa.select(T_ENTRIES.c.behavior, T_ENTRIES.c.key, T_ENTRIES.c.kind, T_ENTRIES.c.data).where(
            T_ENTRIES.c.behavior.in_(sorted({b for b, _ in wanted})),
            T_ENTRIES.c.key.in_(sorted({k for _, k in wanted})),
        )
    ).all()
    out: dict[str, tuple[str, ...]] = {}
    for behavior, key, kind, data in found:
        if (behavior, key) in wanted and kind == EntryKind.RUN_REPORTED.value:
            out[behavior] = tuple(
                f"{g.get('name')}: {g.get('reason') or 'failed'}"
                for g in (data or {}).get("gates", ())
                if not g.get("passed", True)
            )
    return out


def last_runs(conn: Connection, names: Sequence[str]) -> dict[str, LastRun]:
    """Each behavior's latest finished run (by finish time; the runs index answers it)."""
    if not names:
        return {}
    newest = (
        sa.select(T_RUNS.c.behavior, sa.func.max(T_RUNS.c.finished_at).label("at"))
        .where(T_RUNS.c.behavior.in_(names))
        .group_by(T_RUNS.c.behavior)
        .subquery()
    )
    rows = conn.execute(
        sa.select(T_RUNS)
        .join(
            newest,
            sa.and_(T_RUNS.c.behavior == newest.c.behavior, T_RUNS.c.finished_at == newest.c.at),
        )
        .order_by(T_RUNS.c.id)
    ).all()
    out: dict[str, LastRun] = {}
    for r in rows:  # two runs finishing at the same instant: the later recorded wins
        out[r.behavior] = LastRun(r.run_id, r.workflow_id, utc(r.finished_at), r.outcome, r.summary)
    return out


def spend_of(conn: Connection, names: Sequence[str], now: datetime, tz: str) -> dict[str, Spend]:
    """Spend against cap for the period, per behavior bound to a key: what `cleanday keys`
    reports (a live reservation counts its estimate, anything else its cost), for these
    behaviors alone."""
    if not names:
        return {}
    bindings = conn.execute(
        sa.select(_BINDINGS.c.behavior, _BINDINGS.c.cap_usd, _BINDINGS.c.cadence).where(
            _BINDINGS.c.behavior.in_(names)
        )
    ).all()
    live_since = now - RESERVATION_TTL
    out: dict[str, Spend] = {}
    by_cadence: dict[str, list[Any]] = {}
    for b in bindings:
        by_cadence.setdefault(b.cadence, []).append(b)
    for cadence, group in by_cadence.items():
        start, end = period_bounds(cadence, now, tz)
        counted = sa.case(
            (
                _SPEND.c.status == "reserved",
                sa.case((_SPEND.c.at >= live_since, _SPEND.c.estimate_usd), else_=0.0),
            ),
            else_=_SPEND.c.cost_usd,
        )
        sums: dict[str, float] = dict(
            conn.execute(
                sa.select(_SPEND.c.behavior, sa.func.coalesce(sa.func.sum(counted), 0.0))
                .where(
                    _SPEND.c.behavior.in_([b.behavior for b in group]),
                    _SPEND.c.at >= start,
                    _SPEND.c.at < end,
                )
                .group_by(_SPEND.c.behavior)
            ).all()
        )
        for b in group:
            spent = float(sums.get(b.behavior, 0.0))
            out[b.behavior] = Spend(spent, float(b.cap_usd), cadence, end)
    return out


def utc(value: datetime | str) -> datetime:
    """An aware UTC datetime from what the driver returns (SQLite: naive UTC, maybe text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
