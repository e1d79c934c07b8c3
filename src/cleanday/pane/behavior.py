"""A behavior's page: what it is, where it stands, and how it got there — its tier history, its
clean-day streak day by day, its recent runs with their gates, its gate failures, its presets
and its spend.

The streak is the ladder's own answer for each day: the behavior's entries folded in order and
viewed at the end of every day (`ladder.apply`, `ladder.view`), so the chart can never disagree
with the clean-day count the ledger keeps.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from cleanday import clock, ladder
from cleanday.domain import BehaviorState, Entry, EntryKind, Policy, Status
from cleanday.ledger import store
from cleanday.ledger.core import behavior as behavior_row
from cleanday.models import T_ENTRIES, T_PENDING
from cleanday.pane.next_runs import NextRun, NextRuns
from cleanday.pane.overview import Progress, Spend, progress, spend_of, utc
from cleanday.pane.waiting import Listed, items
from cleanday.presets import PresetStore, PresetVersion, Publication
from cleanday.router.tables import KeySpend

STREAK_DAYS = 60
SPEND_DAYS = 30
RECENT_RUNS = 20
FAILURES = 20
TIMELINE_KINDS = (
    EntryKind.REGISTERED,
    EntryKind.PROMOTED,
    EntryKind.DEMOTED,
    EntryKind.QUARANTINED,
    EntryKind.PAUSED,
    EntryKind.RESUMED,
    EntryKind.RETIRED,
    EntryKind.KEY_RELEASED,
    EntryKind.REVIVED,
    EntryKind.OVERRIDE,
)
_SPEND = KeySpend.__table__  # type: ignore[attr-defined]

DayKind = Literal["clean", "broken", "idle", "open", "before"]


@dataclass(frozen=True)
class Day:
    """One day of the streak chart: the clean-day count at its end, and what kind of day it
    was (`open`: today, not closed yet; `before`: before registration)."""

    on: date
    clean_days: int | None
    kind: DayKind
    runs: int = 0


@dataclass(frozen=True)
class Event:
    """One step of the tier history."""

    at: datetime
    kind: str
    title: str
    detail: str = ""
    run_id: str | None = None


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class RunLine:
    run_id: str
    workflow_id: str | None
    finished_at: datetime
    outcome: str
    gates: list[Gate]
    anomalies: list[str]
    cost_usd: float
    model: str | None
    transport: str | None
    summary: str | None


@dataclass(frozen=True)
class FailureLine:
    at: datetime
    gate: str
    reason: str
    tier: str | None
    run_id: str | None


@dataclass(frozen=True)
class PresetLine:
    version: PresetVersion
    publications: list[Publication]
    current: bool


@dataclass(frozen=True)
class SignedItem:
    item_id: str
    run_id: str
    kind: str
    status: str
    decided_at: datetime | None
    decided_by: str | None


@dataclass(frozen=True)
class Detail:
    name: str
    work_order: dict[str, Any]
    state: BehaviorState
    progress: Progress
    next_run: NextRun
    spend: Spend | None
    spend_days: list[tuple[date, float]]
    proposals: Listed
    staged: Listed
    signed: list[SignedItem]
    timeline: list[Event]
    streak: list[Day]
    runs: list[RunLine]
    failures: list[FailureLine]
    presets: list[PresetLine] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.state.status is Status.ACTIVE


def detail(
    engine: Engine,
    conn: Connection,
    name: str,
    state: BehaviorState,
    policy: Policy,
    now: datetime,
    next_runs: NextRuns,
) -> Detail:
    """Everything on the behavior's page; `state` is the ladder's view of it now."""
    wo = dict(behavior_row(conn, name).work_order)
    entries = [e for _, e in store.primitive_entries(conn, name)]
    presets = PresetStore(engine)
    current = max((v.version for v in presets.history(name)), default=None)
    publications = presets.publications(name, conn=conn)
    by_version: dict[int, list[Publication]] = defaultdict(list)
    for p in publications:
        by_version[p.version].append(p)
    return Detail(
        name=name,
        work_order=wo,
        state=state,
        progress=progress(state.tier.value, state.clean_days, policy),
        next_run=next_runs.lookup(name, wo.get("trigger", {}), state.status is Status.ACTIVE, now),
        spend=spend_of(conn, [name], now, policy.timezone).get(name),
        spend_days=spend_days(conn, name, now, policy.timezone),
        proposals=items(conn, "proposal", now, 50, behavior=name),
        staged=items(conn, "staged", now, 50, behavior=name),
        signed=signed_items(conn, name),
        timeline=timeline(conn, name),
        streak=streak(name, entries, policy, now),
        runs=recent_runs(conn, name),
        failures=failures(conn, name),
        presets=[
            PresetLine(v, by_version.get(v.version, []), v.version == current)
            for v in reversed(presets.history(name))
        ],
    )


def streak(
    name: str, entries: list[Entry], policy: Policy, now: datetime, days: int = STREAK_DAYS
) -> list[Day]:
    """The last `days` days, each with the clean-day count the ladder gives at its end."""
    tz = policy.timezone
    today = clock.local_date(now, tz)
    seen: set[str] = set()
    ordered = []
    for e in sorted((e for e in entries if e.kind.folded), key=ladder.fold_order):
        if e.key not in seen:  # the same fact reported twice counts once (as `ladder.fold`)
            seen.add(e.key)
            ordered.append(e)
    facts = _day_facts(ordered, policy)
    acc, i, out = ladder.initial(name), 0, []
    for n in range(days - 1, -1, -1):
        d = today - timedelta(days=n)
        end = min(clock.day_bounds(d, tz)[1], now)
        while i < len(ordered) and ordered[i].at <= end:
            acc = ladder.apply(acc, ordered[i], policy)
            i += 1
        registered = acc.registered_at
        if registered is None or clock.local_date(registered, tz) > d:
            out.append(Day(d, None, "before"))
            continue
        runs, dirty = facts.get(d, (0, False))
        kind: DayKind = "open" if d == today else "broken" if dirty else "clean" if runs else "idle"
        out.append(Day(d, ladder.view(acc, policy, end).clean_days, kind, runs))
    return out


def _day_facts(entries: list[Entry], policy: Policy) -> dict[date, tuple[int, bool]]:
    """(runs, unclean) per local day: a failed gate, a counted anomaly or an override."""
    out: dict[date, tuple[int, bool]] = {}
    for e in entries:
        d = clock.local_date(e.at, policy.timezone)
        runs, dirty = out.get(d, (0, False))
        if e.kind is EntryKind.RUN_REPORTED:
            runs += 1
            dirty = dirty or bool(e.failed_gates)
            dirty = dirty or any(policy.anomaly_counts(a.name) for a in e.anomalies)
        elif e.kind is EntryKind.OVERRIDE:
            dirty = True
        out[d] = (runs, dirty)
    return out


def timeline(conn: Connection, name: str) -> list[Event]:
    """Registration, every tier change, quarantine, pause, resume, retirement and override,
    newest first."""
    rows = conn.execute(
        sa.select(T_ENTRIES.c.kind, T_ENTRIES.c.at, T_ENTRIES.c.data)
        .where(
            T_ENTRIES.c.behavior == name,
            T_ENTRIES.c.kind.in_([k.value for k in TIMELINE_KINDS]),
        )
        .order_by(T_ENTRIES.c.seq.desc())
        .limit(200)
    ).all()
    return [_event(EntryKind(r.kind), utc(r.at), dict(r.data or {})) for r in rows]


def _event(kind: EntryKind, at: datetime, data: dict[str, Any]) -> Event:
    if kind in (EntryKind.PROMOTED, EntryKind.DEMOTED):
        title = f"{data.get('from')} → {data.get('to')}"
        cause = data.get("cause")
        if cause == "promotion":
            detail = f"promoted at the close of the review of {data.get('week')}"
        elif cause == "gate":
            detail = f"{data.get('gate')} gate failed: {data.get('reason') or ''}".strip()
        else:
            detail = f"forced by the operator: {data.get('reason') or ''}".strip()
        return Event(at, kind.value, title, detail, data.get("run_id"))
    if kind is EntryKind.REGISTERED:
        return Event(at, kind.value, f"registered (version {data.get('version', 1)})")
    if kind is EntryKind.KEY_RELEASED:
        return Event(at, kind.value, "key released", f"{data.get('key_ref')} is free for reuse")
    if kind is EntryKind.REVIVED:
        return Event(at, kind.value, "revived at tier A", f"fresh clock ({data.get('by')})")
    if kind is EntryKind.OVERRIDE:
        what = str(data.get("kind", "manual")).replace("_", " ")
        return Event(at, kind.value, f"override: {what}", str(data.get("reason", "")))
    reason = str(data.get("reason") or "")
    by = data.get("by")
    return Event(at, kind.value, kind.value, f"{reason} ({by})" if by else reason)


def recent_runs(conn: Connection, name: str, limit: int = RECENT_RUNS) -> list[RunLine]:
    """The latest run reports, newest first, each with every gate's result (from its entry)."""
    rows = conn.execute(
        sa.select(T_ENTRIES.c.at, T_ENTRIES.c.data)
        .where(T_ENTRIES.c.behavior == name, T_ENTRIES.c.kind == EntryKind.RUN_REPORTED.value)
        .order_by(T_ENTRIES.c.seq.desc())
        .limit(limit)
    ).all()
    out = []
    for at, data in rows:
        d = dict(data or {})
        out.append(
            RunLine(
                run_id=str(d.get("run_id", "")),
                workflow_id=d.get("workflow_id"),
                finished_at=utc(at),
                outcome=str(d.get("outcome", "")),
                gates=[
                    Gate(str(g.get("name")), bool(g.get("passed")), str(g.get("reason") or ""))
                    for g in d.get("gates", ())
                ],
                anomalies=[
                    f"{a.get('name')}: {a.get('detail') or ''}".strip(": ")
                    for a in d.get("anomalies", ())
                ],
                cost_usd=float(d.get("cost_usd") or 0.0),
                model=d.get("model"),
                transport=d.get("transport"),
                summary=d.get("summary"),
            )
        )
    return out


def failures(conn: Connection, name: str, limit: int = FAILURES) -> list[FailureLine]:
    """Every gate failure (the ledger's `gate_failed` audit entries), newest first."""
    rows = conn.execute(
        sa.select(T_ENTRIES.c.at, T_ENTRIES.c.data)
        .where(T_ENTRIES.c.behavior == name, T_ENTRIES.c.kind == EntryKind.GATE_FAILED.value)
        .order_by(T_ENTRIES.c.seq.desc())
        .limit(limit)
    ).all()
    return [
        FailureLine(
            utc(at),
            str(d.get("gate", "")),
            str(d.get("reason", "")),
            d.get("tier"),
            d.get("run_id"),
        )
        for at, d in ((a, dict(x or {})) for a, x in rows)
    ]


def signed_items(conn: Connection, name: str, limit: int = 20) -> list[SignedItem]:
    """Proposals and staged items already signed off (or expired), newest first."""
    rows = conn.execute(
        sa.select(T_PENDING)
        .where(T_PENDING.c.behavior == name, T_PENDING.c.status != "pending")
        .order_by(T_PENDING.c.id.desc())
        .limit(limit)
    ).all()
    return [
        SignedItem(
            r.item_id,
            r.run_id,
            r.kind,
            r.status,
            utc(r.decided_at) if r.decided_at is not None else None,
            r.decided_by,
        )
        for r in rows
    ]


def spend_days(
    conn: Connection, name: str, now: datetime, tz: str, days: int = SPEND_DAYS
) -> list[tuple[date, float]]:
    """What the behavior's calls cost each day of the last `days` (settled costs; live
    reservations at their estimate), oldest first."""
    today = clock.local_date(now, tz)
    first = today - timedelta(days=days - 1)
    start, _ = clock.day_bounds(first, tz)
    rows = conn.execute(
        sa.select(_SPEND.c.at, _SPEND.c.status, _SPEND.c.cost_usd, _SPEND.c.estimate_usd).where(
            _SPEND.c.behavior == name, _SPEND.c.at >= start
        )
    ).all()
    per_day: dict[date, float] = defaultdict(float)
    for at, status, cost, estimate in rows:
        d = clock.local_date(utc(at), tz)
        per_day[d] += float(estimate if status == "reserved" else cost)
    return [
        (first + timedelta(days=n), per_day.get(first + timedelta(days=n), 0.0))
        for n in range(days)
    ]
