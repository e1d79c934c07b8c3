"""The ledger's rows below the use cases: entries as domain objects, state rows and job
markers. Plain SQLAlchemy Core on a connection the caller owns."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday import ladder
from cleanday.bulk import JsonText, raw_update
from cleanday.domain import Entry, EntryKind
from cleanday.models import T_BEHAVIORS, T_CHAIN_HEAD, T_ENTRIES, T_JOBS, T_STATES

PRIMITIVE_KINDS: tuple[str, ...] = tuple(k.value for k in EntryKind if k.folded)

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


def update_states(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Bulk update of state rows; each dict holds `behavior` plus the columns to set (the same
    columns in every dict)."""
    raw_update(conn, T_STATES, "behavior", rows)


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


class AccumulatorCache:
    """Decoded accumulators between batches, keyed by the exact JSON text they were stored as.

    The batch ingest reads each behavior's accumulator as its stored text; when that text is
    the one this process last wrote (or decoded) for the behavior, the decoded accumulator is
    reused instead of parsing it again. Because the key is the stored text itself, whoever
    else writes a state row (the day close, an override, another process) invalidates the
    entry simply by storing different text, and an entry for a transaction that rolled back
    is never matched. Accumulators are immutable snapshots (`ladder.apply` copies), so
    sharing one between batches is safe.
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._by_behavior: dict[str, tuple[str, ladder.Accumulator]] = {}

    def decode(self, name: str, text: str) -> ladder.Accumulator:
        hit = self._by_behavior.get(name)
        if hit is not None and hit[0] == text:
            return hit[1]
        acc = ladder.Accumulator.from_json(json.loads(text))
        self._remember(name, text, acc)
        return acc

    def encode(self, name: str, acc: ladder.Accumulator) -> JsonText:
        text = JsonText(json.dumps(acc.to_json()))
        self._remember(name, text, acc)
        return text

    def _remember(self, name: str, text: str, acc: ladder.Accumulator) -> None:
        if len(self._by_behavior) >= self.max_entries and name not in self._by_behavior:
            self._by_behavior.clear()  # more behaviors than fit: start over, simply
        self._by_behavior[name] = (text, acc)
