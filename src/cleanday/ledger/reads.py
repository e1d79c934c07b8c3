"""Every read of the ledger: the Pane of Glass rows, a behavior's state, its Work Order, its
history, its items, the trailing medians and the week's decisions. Nothing here writes."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday import clock
from cleanday.db import is_sqlite
from cleanday.domain import BehaviorState, Decision, EntryKind
from cleanday.errors import UnknownBehaviorError, UnknownItemError
from cleanday.ledger.core import LedgerCore, behavior
from cleanday.ledger.rows import behavior_row
from cleanday.ledger.schemas import BehaviorRow, LedgerEntryRow, Medians, PendingItemRow
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
) -> list[BehaviorRow]:
    """Pane of Glass rows straight from the driver, by name: listing 10,000 behaviors (or as
    many candidates) is dominated by per-row work, so it is kept to the conversions it needs."""
    sql, params = _PANE_SQL, {}
    if candidates_only:
        sql += " WHERE s.candidate = " + ("1" if is_sqlite(conn) else "true")
        sql += " AND s.status = 'active'"
    elif name is not None:
        sql += " WHERE s.behavior = " + (":name" if is_sqlite(conn) else "%(name)s")
        params = {"name": name}
    sql += " ORDER BY s.behavior"
    decisions = decisions or {}
    return [
        behavior_row(*r, decision=decisions.get(r[0])) for r in conn.exec_driver_sql(sql, params)
    ]


def row(conn: Connection, name: str) -> BehaviorRow:
    """One behavior's Pane of Glass row."""
    found = pane_rows(conn, name=name)
    if not found:
        behavior(conn, name)
        raise UnknownBehaviorError(f"behavior {name!r} has no state row; run ledger rebuild")
    return found[0]


def list_behaviors(ledger: LedgerCore) -> list[BehaviorRow]:
    """Every behavior's cached state (no folding), by name."""
    with ledger.engine.connect() as conn:
        return pane_rows(conn)


def candidates(ledger: LedgerCore, week: date | None = None) -> list[BehaviorRow]:
    """Active candidates from the cached state (no folding); with `week`, each row carries
    the latest decision recorded for that week's review."""
    with ledger.engine.connect() as conn:
        found = decisions(ledger, conn, week) if week is not None else {}
        return pane_rows(conn, candidates_only=True, decisions=found)


def decisions(ledger: LedgerCore, conn: Connection, week: date) -> dict[str, Decision]:
    """Latest decision per behavior for the review of `week` (the Sunday)."""
    tz = ledger.policy.timezone
    start, _ = clock.day_bounds(week - timedelta(days=6), tz)
    end = clock.sunday_close_at(week, tz)
    rows = conn.execute(
        sa.select(T_ENTRIES.c.behavior, T_ENTRIES.c.data)
        .where(
            T_ENTRIES.c.kind == EntryKind.DECISION.value,
            T_ENTRIES.c.at >= start,
            T_ENTRIES.c.at <= end,
        )
        .order_by(T_ENTRIES.c.seq)
    ).all()
    out: dict[str, Decision] = {}
    for r in rows:
        if r.data.get("week") == week.isoformat():
            out[r.behavior] = Decision(r.data["decision"])
    return out


def get_work_order(ledger: LedgerCore, name: str) -> WorkOrder:
    with ledger.engine.connect() as conn:
        return WorkOrder.model_validate(behavior(conn, name).work_order)


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
