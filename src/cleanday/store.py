"""Reading and writing ledger rows below the service: entries as domain objects, state rows,
outbox rows and job markers. Plain SQLAlchemy Core on a connection the caller owns."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
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
    UTCDateTime,
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


# Built once: the per-run path runs these on every report, and building a statement costs more
# than SQLite takes to answer it.
_Q_ENTRIES_OF = (
    sa.select(
        T_ENTRIES.c.seq,
        T_ENTRIES.c.behavior,
        T_ENTRIES.c.kind,
        T_ENTRIES.c.at,
        T_ENTRIES.c.key,
        T_ENTRIES.c.data,
    )
    .where(
        T_ENTRIES.c.behavior == sa.bindparam("behavior"),
        T_ENTRIES.c.seq > sa.bindparam("after"),
        T_ENTRIES.c.kind.in_(PRIMITIVE_KINDS),
    )
    .order_by(T_ENTRIES.c.seq)
)
_Q_STATES = sa.select(
    T_STATES, T_BEHAVIORS.c.idle_days, T_BEHAVIORS.c.version, T_BEHAVIORS.c.preset_version
).join(T_BEHAVIORS, T_BEHAVIORS.c.name == T_STATES.c.behavior)
_Q_STATE_ONE = _Q_STATES.where(T_STATES.c.behavior == sa.bindparam("behavior"))
# the same with the accumulator as the JSON text stored (`accumulator_text`), undecoded
_Q_STATES_TEXT = sa.select(
    *(c for c in T_STATES.c if c.name != "accumulator"),
    sa.cast(T_STATES.c.accumulator, sa.Text).label("accumulator_text"),
    T_BEHAVIORS.c.idle_days,
    T_BEHAVIORS.c.version,
    T_BEHAVIORS.c.preset_version,
).join(T_BEHAVIORS, T_BEHAVIORS.c.name == T_STATES.c.behavior)
_NAMES: sa.BindParameter[Any] = sa.bindparam("names", expanding=True)
_Q_STATES_IN = _Q_STATES.where(T_STATES.c.behavior.in_(_NAMES))
_Q_STATES_TEXT_IN = _Q_STATES_TEXT.where(T_STATES.c.behavior.in_(_NAMES))


def primitive_entries_of(conn: Connection, behavior: str, after: int) -> list[tuple[int, Entry]]:
    """One behavior's primitive entries beyond seq `after` (not yet folded), in chain order."""
    rows = conn.execute(_Q_ENTRIES_OF, {"behavior": behavior, "after": after}).all()
    return [(int(r.seq), to_entry(r)) for r in rows]


def state_row(conn: Connection, behavior: str) -> Any | None:
    """One behavior's state row with its behavior columns, or None if it has none."""
    return conn.execute(_Q_STATE_ONE, {"behavior": behavior}).first()


def pending_sql(conn: Connection) -> str:
    """The day close's read of unfolded entries (see `primitive_entries_after`)."""
    lo, hi = (":seq", ":upto") if conn.dialect.name == "sqlite" else ("%(seq)s", "%(upto)s")
    return (
        "SELECT e.seq, e.behavior, e.kind, e.at, e.key, e.data FROM ledger_entries e "
        "JOIN behavior_states s ON s.behavior = e.behavior "
        f"WHERE e.seq > {lo} AND e.seq <= {hi} AND e.seq > s.last_seq ORDER BY e.seq"
    )


def primitive_entries_after(
    conn: Connection, seq: int, upto: int
) -> dict[str, list[tuple[int, Entry]]]:
    """Primitive entries with `seq` < entry seq <= `upto` (the locked chain head) that their
    behavior's state has not folded yet, grouped by behavior, each group in chain order.

    Read through the driver: the day close reads a whole day of entries, and SQLAlchemy's
    per-row type processing would cost more than the query. The query is a range of the
    primary key and nothing else, so that it costs that range's entries whatever the
    history: bounded on both sides, because without statistics (PostgreSQL before its first
    ANALYZE) an open range looks like a third of the table; and the kinds are picked here,
    because given `kind IN (...)` both databases would rather walk the (kind, at) index over
    every run report ever made.
    """
    result = conn.exec_driver_sql(pending_sql(conn), {"seq": seq, "upto": upto})
    out: dict[str, list[tuple[int, Entry]]] = defaultdict(list)
    kind_of = {k.value: k for k in EntryKind}
    primitive = set(PRIMITIVE_KINDS)
    for s_, behavior, kind, at, key, data in result:
        if kind not in primitive:
            continue
        if isinstance(at, str):
            at = datetime.fromisoformat(at).replace(tzinfo=UTC)
        elif at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if isinstance(data, str):
            data = json.loads(data)
        out[behavior].append((int(s_), Entry(behavior, kind_of[kind], at, key, data or {})))
    return out


def behaviors_with_entries_between(conn: Connection, start: datetime, end: datetime) -> set[str]:
    rows = conn.execute(
        sa.select(T_ENTRIES.c.behavior)
        .where(T_ENTRIES.c.at >= start, T_ENTRIES.c.at < end)
        .distinct()
    ).all()
    return {r.behavior for r in rows}


def state_rows(
    conn: Connection, names: Sequence[str] | None = None, *, acc_text: bool = False
) -> dict[str, Any]:
    """Materialized state rows joined with the behavior columns the fold needs; with
    `acc_text`, the accumulator comes as its stored JSON text (`accumulator_text`)."""
    if names is None:
        return {r.behavior: r for r in conn.execute(_Q_STATES_TEXT if acc_text else _Q_STATES)}
    query = _Q_STATES_TEXT_IN if acc_text else _Q_STATES_IN
    out: dict[str, Any] = {}
    for part in chunks(list(names)):
        for r in conn.execute(query, {"names": part}).all():
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
    raw_update(conn, T_STATES, "behavior", rows)


# --- bulk writes below the ORM ----------------------------------------------------------------
# The day close updates thousands of state rows and a bulk load appends millions of entries;
# SQLAlchemy's per-parameter processing costs more than the database does there, so these
# paths convert values once, by column type, and hand the driver a plain executemany.


def _converter(conn: Connection, column: sa.Column[Any]) -> Any:
    sqlite = conn.dialect.name == "sqlite"
    kind = column.type
    if isinstance(kind, sa.JSON):
        return _json_text
    if isinstance(kind, UTCDateTime):
        if sqlite:
            return _sqlite_ts
        return lambda v: None if v is None else v.astimezone(UTC)
    if isinstance(kind, sa.Date) and sqlite:
        return lambda v: None if v is None else v.isoformat()
    return None


class JsonText(str):
    """A JSON column value already serialized (the caller keeps the text, e.g. to recognise
    the stored value later); written as is."""

    __slots__ = ()


def _json_text(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, JsonText) else json.dumps(v)


def _sqlite_ts(v: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DATETIME storage format: naive UTC, always with microseconds
    (`isoformat` is several times cheaper than `strftime`, and the same text)."""
    if v is None:
        return None
    return v.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _placeholder(conn: Connection, column: sa.Column[Any]) -> str:
    if conn.dialect.name == "sqlite":
        return "?"
    return "CAST(%s AS JSON)" if isinstance(column.type, sa.JSON) else "%s"


def _convert(
    conn: Connection, table: sa.Table, cols: Sequence[str], rows: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """Positional parameter tuples, each value converted once by its column's type."""
    convs = [(c, _converter(conn, table.c[c])) for c in cols]
    if all(f is None for _, f in convs):
        return [tuple(r[c] for c in cols) for r in rows]
    return [tuple(f(r[c]) if f else r[c] for c, f in convs) for r in rows]


def raw_insert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT many rows (all with the same keys) through the driver's executemany."""
    if not rows:
        return
    cols = list(rows[0])
    sql = (
        f"INSERT INTO {table.name} ({', '.join(cols)}) "
        f"VALUES ({', '.join(_placeholder(conn, table.c[c]) for c in cols)})"
    )
    conn.exec_driver_sql(sql, _convert(conn, table, cols, rows))


def raw_update(conn: Connection, table: sa.Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE many rows by `key` (each dict holds the key and the same columns to set)."""
    if not rows:
        return
    cols = [c for c in rows[0] if c != key]
    sets = ", ".join(f"{c} = {_placeholder(conn, table.c[c])}" for c in cols)
    sql = f"UPDATE {table.name} SET {sets} WHERE {key} = {_placeholder(conn, table.c[key])}"
    conn.exec_driver_sql(sql, _convert(conn, table, [*cols, key], rows))


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
