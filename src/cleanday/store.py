"""Reading and writing ledger rows below the service: entries as domain objects, state rows,
outbox rows and job markers. Plain SQLAlchemy Core on a connection the caller owns."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday.domain import BehaviorState, Entry, EntryKind
from cleanday.models import (
    T_BEHAVIORS,
    T_CHAIN_HEAD,
    T_ENTRIES,
    T_JOBS,
    T_OUTBOX,
    T_STATES,
)

PRIMITIVE_KINDS: tuple[str, ...] = tuple(k.value for k in EntryKind if not k.derived)

# Keep IN (...) lists well under SQLite's and psycopg's parameter limits.
CHUNK = 5000


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def to_entry(row: Any) -> Entry:
    return Entry(
        behavior=row.behavior,
        kind=EntryKind(row.kind),
        at=row.at,
        key=row.key,
        data=dict(row.data or {}),
    )


def primitive_entries(conn: Connection, behavior: str) -> list[tuple[int, Entry]]:
    """Every primitive entry of one behavior, as (seq, Entry), in chain order."""
    rows = conn.execute(
        sa.select(T_ENTRIES)
        .where(T_ENTRIES.c.behavior == behavior, T_ENTRIES.c.kind.in_(PRIMITIVE_KINDS))
        .order_by(T_ENTRIES.c.seq)
    ).all()
    return [(int(r.seq), to_entry(r)) for r in rows]


def primitive_entries_of(conn: Connection, behavior: str, after: int) -> list[tuple[int, Entry]]:
    """One behavior's primitive entries beyond seq `after` (not yet folded), in chain order."""
    rows = conn.execute(
        sa.select(T_ENTRIES)
        .where(
            T_ENTRIES.c.behavior == behavior,
            T_ENTRIES.c.seq > after,
            T_ENTRIES.c.kind.in_(PRIMITIVE_KINDS),
        )
        .order_by(T_ENTRIES.c.seq)
    ).all()
    return [(int(r.seq), to_entry(r)) for r in rows]


def primitive_entries_after(conn: Connection, seq: int) -> dict[str, list[tuple[int, Entry]]]:
    """Primitive entries beyond `seq`, grouped by behavior, each group in chain order."""
    rows = conn.execute(
        sa.select(T_ENTRIES)
        .where(T_ENTRIES.c.seq > seq, T_ENTRIES.c.kind.in_(PRIMITIVE_KINDS))
        .order_by(T_ENTRIES.c.seq)
    ).all()
    out: dict[str, list[tuple[int, Entry]]] = defaultdict(list)
    for r in rows:
        out[r.behavior].append((int(r.seq), to_entry(r)))
    return out


def behaviors_with_entries_between(conn: Connection, start: datetime, end: datetime) -> set[str]:
    rows = conn.execute(
        sa.select(T_ENTRIES.c.behavior)
        .where(T_ENTRIES.c.at >= start, T_ENTRIES.c.at < end)
        .distinct()
    ).all()
    return {r.behavior for r in rows}


def state_rows(conn: Connection, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Materialized state rows joined with the behavior columns the fold needs."""
    query = sa.select(T_STATES, T_BEHAVIORS.c.idle_days, T_BEHAVIORS.c.version).join(
        T_BEHAVIORS, T_BEHAVIORS.c.name == T_STATES.c.behavior
    )
    if names is None:
        return {r.behavior: r for r in conn.execute(query).all()}
    out: dict[str, Any] = {}
    for part in chunks(list(names)):
        for r in conn.execute(query.where(T_STATES.c.behavior.in_(part))).all():
            out[r.behavior] = r
    return out


def state_values(state: BehaviorState) -> dict[str, Any]:
    """The cached columns of a state row, from what the ladder concluded."""
    lf = state.last_failure
    return {
        "tier": state.tier.value,
        "status": state.status.value,
        "clean_days": state.clean_days,
        "candidate": state.candidate,
        "last_gate_failure": lf.on if lf else None,
        "last_failure_gate": lf.gate if lf else None,
        "last_failure_reason": lf.reason if lf else None,
        "last_failure_run": lf.run_id if lf else None,
        "tier_since": state.tier_since,
        "quarantined_at": state.quarantined_at,
    }


def update_states(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Bulk update of state rows; each dict holds `behavior` plus the columns to set (the same
    columns in every dict)."""
    if not rows:
        return
    cols = [c for c in rows[0] if c != "behavior"]
    stmt = (
        sa.update(T_STATES)
        .where(T_STATES.c.behavior == sa.bindparam("b_behavior"))
        .values({c: sa.bindparam(f"b_{c}") for c in cols})
    )
    conn.execute(stmt, [{f"b_{k}": v for k, v in r.items()} for r in rows])


def add_outbox(
    conn: Connection,
    items: Sequence[dict[str, Any]],
    now: datetime,
) -> int:
    """Queue notifications, skipping any whose dedupe key is already queued; returns how many."""
    if not items:
        return 0
    keys = [i["dedupe_key"] for i in items]
    existing: set[str] = set()
    for part in chunks(keys):
        existing |= set(
            conn.execute(
                sa.select(T_OUTBOX.c.dedupe_key).where(T_OUTBOX.c.dedupe_key.in_(part))
            ).scalars()
        )
    fresh = [
        {
            "channel": i["channel"],
            "kind": i["kind"],
            "dedupe_key": i["dedupe_key"],
            "behavior": i.get("behavior"),
            "payload": i["payload"],
            "created_at": now,
            "delivered_at": None,
            "attempts": 0,
            "last_error": None,
        }
        for i in items
        if i["dedupe_key"] not in existing
    ]
    if fresh:
        conn.execute(sa.insert(T_OUTBOX), fresh)
    return len(fresh)


def job_result(conn: Connection, job_key: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(T_JOBS.c.result).where(T_JOBS.c.job_key == job_key)).first()
    return dict(row.result) if row else None


def record_job(
    conn: Connection, job_key: str, started: datetime, finished: datetime, result: dict[str, Any]
) -> None:
    conn.execute(
        sa.insert(T_JOBS).values(
            job_key=job_key, started_at=started, finished_at=finished, result=result
        )
    )


def folded_seq(conn: Connection) -> int:
    v = conn.execute(sa.select(T_CHAIN_HEAD.c.folded_seq).where(T_CHAIN_HEAD.c.id == 1)).scalar()
    return int(v or 0)


def set_folded_seq(conn: Connection, seq: int) -> None:
    conn.execute(sa.update(T_CHAIN_HEAD).where(T_CHAIN_HEAD.c.id == 1).values(folded_seq=seq))
