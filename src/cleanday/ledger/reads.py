"""Every read of the ledger: the Pane of Glass rows, a behavior's state, its Work Order, its
history, its items, the trailing medians and the week's decisions. Nothing here writes."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday import clock
from cleanday.db import is_sqlite
from cleanday.domain import BehaviorState, Decision, EntryKind, Status
from cleanday.errors import UnknownBehaviorError, UnknownItemError
from cleanday.ledger import freshness
from cleanday.ledger.bounds import check_day
from cleanday.ledger.core import LedgerCore, behavior
from cleanday.ledger.rows import behavior_row, row_of_state
from cleanday.ledger.schemas import (
    BehaviorRow,
    DecisionRow,
    LedgerEntryRow,
    Medians,
    PendingItemRow,
)
from cleanday.models import T_ENTRIES, T_PENDING, T_RUNS
from cleanday.workorder import WorkOrder

# the columns of `rows.behavior_row`, in its order
_PANE_SQL = (
    "SELECT s.behavior, s.tier, s.status, s.clean_days, s.candidate, s.last_gate_failure, "
    "s.last_failure_gate, s.last_failure_reason, s.tier_since, s.updated_at, b.version, "
    "b.preset_version FROM behavior_states s JOIN behaviors b ON b.name = s.behavior"
)


def pane_rows(
    conn: Connection,
    *,
    candidates_only: bool = False,
    decisions: dict[str, Decision] | None = None,
    name: str | None = None,
    include_retired: bool = True,
    ledger: LedgerCore | None = None,
) -> list[BehaviorRow]:
    """Pane of Glass rows straight from the driver, by name: listing 10,000 behaviors (or as
    many candidates) is dominated by per-row work, so it is kept to the conversions it needs.
    With `ledger`, no row is older than the latest day that has ended (`freshness`)."""
    stale: datetime | None = None
    if ledger is not None:
        now = ledger.now()
        stale = freshness.stale_before(conn, ledger.policy.timezone, now)
    sql, params = _PANE_SQL, {}
    if not include_retired and not candidates_only and name is None:
        sql += " WHERE s.status <> 'retired'"
    # with stale rows, one may have become a candidate: they are filtered once current, below
    if candidates_only and stale is None:
        sql += " WHERE s.candidate = " + ("1" if is_sqlite(conn) else "true")
        sql += " AND s.status = 'active'"
    elif name is not None:
        sql += " WHERE s.behavior = " + (":name" if is_sqlite(conn) else "%(name)s")
        params = {"name": name}
    sql += " ORDER BY s.behavior"
    decisions = decisions or {}
    rows = [
        behavior_row(*r, decision=decisions.get(r[0])) for r in conn.exec_driver_sql(sql, params)
    ]
    if ledger is None or stale is None:
        return rows  # the closes are done: every stored row is current
    rows = _current(ledger, conn, rows, stale, now)
    if candidates_only:
        rows = [r for r in rows if r.candidate and r.status is Status.ACTIVE]
    return rows


def _current(
    ledger: LedgerCore, conn: Connection, rows: list[BehaviorRow], stale: datetime, now: datetime
) -> list[BehaviorRow]:
    """`rows` with each one folded before `stale` viewed again at `now`."""
    old = [r.name for r in rows if r.updated_at is None or r.updated_at < stale]
    if not old:
        return rows
    states = freshness.current_states(conn, old, ledger.policy_of(conn), now, ledger.accumulators)
    out = []
    for r in rows:
        state = states.get(r.name)
        if state is None:
            out.append(r)
            continue
        fresh = row_of_state(
            state, version=r.version, preset_version=r.preset_version, updated_at=r.updated_at
        )
        out.append(fresh.model_copy(update={"decision": r.decision}) if r.decision else fresh)
    return out


def row(conn: Connection, name: str) -> BehaviorRow:
    """One behavior's Pane of Glass row."""
    found = pane_rows(conn, name=name)
    if not found:
        behavior(conn, name)
        raise UnknownBehaviorError(f"behavior {name!r} has no state row; run ledger rebuild")
    return found[0]


def list_behaviors(ledger: LedgerCore, *, include_retired: bool = False) -> list[BehaviorRow]:
    """Every behavior's stored state, by name, none older than the latest ended day; retired
    ones only when asked."""
    with ledger.engine.connect() as conn:
        return pane_rows(conn, include_retired=include_retired, ledger=ledger)


def candidates(ledger: LedgerCore, week: date | None = None) -> list[BehaviorRow]:
    """Active candidates from the stored state (none older than the latest ended day); with
    `week`, each row carries the latest decision recorded for that week's review."""
    if week is not None:
        check_day(week, "week")
    with ledger.engine.connect() as conn:
        found = decisions(ledger, conn, week) if week is not None else {}
        return pane_rows(conn, candidates_only=True, decisions=found, ledger=ledger)


def decisions(ledger: LedgerCore, conn: Connection, week: date) -> dict[str, Decision]:
    """The decision that stands per behavior for the review of `week` (the Sunday)."""
    return {d.behavior: d.decision for d in decision_log(ledger, conn, week) if d.stands}


def decision_log(
    ledger: LedgerCore, conn: Connection, week: date, behavior: str | None = None
) -> list[DecisionRow]:
    """Every decision recorded for the review of `week`, in the order recorded, superseded ones
    included; per behavior the latest that was not superseded `stands`."""
    tz = ledger.policy.timezone
    start, _ = clock.day_bounds(week - timedelta(days=6), tz)
    end = clock.sunday_close_at(week, tz)
    e = T_ENTRIES.c
    where = [e.kind == EntryKind.DECISION.value, e.at >= start, e.at <= end]
    if behavior is not None:
        where.append(e.behavior == behavior)
    rows = conn.execute(sa.select(e.behavior, e.at, e.data).where(*where).order_by(e.seq)).all()
    out = [
        decision_row(r.behavior, week, r.at, r.data)
        for r in rows
        if r.data.get("week") == week.isoformat()
    ]
    standing = {d.behavior: d for d in out if d.superseded_by is None}
    for d in standing.values():
        d.stands = True
    return out


def decision_row(behavior: str, week: date, at: datetime, data: dict[str, Any]) -> DecisionRow:
    """A decision entry's data as a row."""
    by = str(data.get("by", ""))
    door = data.get("door")
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    raw = data.get("decided_at")
    return DecisionRow(
        week=week,
        behavior=behavior,
        decision=Decision(data["decision"]),
        by=by,
        door=door,
        at=at,
        decided_at=datetime.fromisoformat(raw) if raw else at,
        superseded_by=data.get("superseded_by"),
    )


def get_work_order(ledger: LedgerCore, name: str) -> WorkOrder:
    with ledger.engine.connect() as conn:
        return WorkOrder.model_validate(behavior(conn, name).work_order)


def current_work_order(ledger: LedgerCore, name: str) -> tuple[int, dict[str, Any]]:
    """The version the ledger holds of the behavior's Work Order, and that Work Order (JSON):
    what a worker runs, whatever files it read at start."""
    with ledger.engine.connect() as conn:
        row = behavior(conn, name)
        return int(row.version), dict(row.work_order)


def state(ledger: LedgerCore, name: str) -> BehaviorState:
    """What the ladder says about `name` right now (from its folded accumulator)."""
    with ledger.engine.connect() as conn:
        return ledger.view(conn, name, ledger.now())


def items(
    ledger: LedgerCore, name: str, *, status: str | None = None, item_id: str | None = None
) -> list[PendingItemRow]:
    """The behavior's proposals and staged items, oldest first (a staged item past its expiry
    reads as expired even before the next write marks it so)."""
    now = ledger.now()
    query = sa.select(T_PENDING).where(T_PENDING.c.behavior == name)
    if item_id is not None:
        query = query.where(T_PENDING.c.item_id == item_id)
    with ledger.engine.connect() as conn:
        behavior(conn, name)
        rows = conn.execute(query.order_by(T_PENDING.c.id)).all()
    found = [_item_row(r, now) for r in rows]
    return [i for i in found if status is None or i.status == status]


def item(ledger: LedgerCore, name: str, item_id: str) -> PendingItemRow:
    """One proposal or staged item; UnknownItemError names it when it does not exist."""
    found = items(ledger, name, item_id=item_id)
    if not found:
        raise UnknownItemError(f"{name} has no proposal or staged item {item_id!r}")
    return found[0]


def history(ledger: LedgerCore, name: str) -> list[LedgerEntryRow]:
    with ledger.engine.connect() as conn:
        behavior(conn, name)
        rows = conn.execute(
            sa.select(T_ENTRIES).where(T_ENTRIES.c.behavior == name).order_by(T_ENTRIES.c.seq)
        ).all()
    return [
        LedgerEntryRow(
            seq=r.seq,
            behavior=r.behavior,
            kind=EntryKind(r.kind),
            at=r.at,
            key=r.key,
            data=r.data,
            prev_hash=r.prev_hash,
            hash=r.hash,
            recorded_at=r.recorded_at,
        )
        for r in rows
    ]


def trailing_medians(ledger: LedgerCore, name: str, days: int = 14) -> Medians:
    """Medians of cost, latency and output size over the behavior's runs in the last days."""
    since = ledger.now() - timedelta(days=days)
    with ledger.engine.connect() as conn:
        behavior(conn, name)
        rows = conn.execute(
            sa.select(T_RUNS.c.cost_usd, T_RUNS.c.latency_ms, T_RUNS.c.output_size).where(
                T_RUNS.c.behavior == name, T_RUNS.c.finished_at >= since
            )
        ).all()

    def med(values: Iterable[float | None]) -> float | None:
        vs = [float(v) for v in values if v is not None]
        return statistics.median(vs) if vs else None

    return Medians(
        behavior=name,
        days=days,
        runs=len(rows),
        cost_usd=med(r.cost_usd for r in rows),
        latency_ms=med(r.latency_ms for r in rows),
        output_size=med(r.output_size for r in rows),
    )


def _item_row(r: Any, now: datetime) -> PendingItemRow:
    expired = r.status == "pending" and r.expires_at is not None and r.expires_at <= now
    return PendingItemRow(
        behavior=r.behavior,
        item_id=r.item_id,
        run_id=r.run_id,
        kind=r.kind,
        status="expired" if expired else r.status,
        payload=dict(r.payload or {}),
        created_at=r.created_at,
        expires_at=r.expires_at,
        decided_at=r.decided_at,
        decided_by=r.decided_by,
    )
