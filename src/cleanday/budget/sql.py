"""The budget's SQL, written once with named parameters, and the transaction that runs it
through SQLAlchemy (spend and preset reads on both databases; PostgreSQL's synchronous path).

The statements are text with typed parameters, built once: SQLAlchemy's per-statement
construction would otherwise sit on the path of every model call. `sqlite.py` runs the same
text on the sqlite3 cursor (which takes `:name` itself), `postgres.py` with psycopg's
placeholders (`pyformat`).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import Connection, TextualSelect, bindparam, column, text

from cleanday.budget.base import BindingRow, PresetHead
from cleanday.router.tables import KeySpend, RoutingBinding

_AT = KeySpend.__table__.c.at.type  # type: ignore[attr-defined]
_JSON = RoutingBinding.__table__.c.transports.type  # type: ignore[attr-defined]

BINDING = (
    "SELECT behavior, key_ref, cap_usd, cadence, transports, guardrails, openrouter_key_hash, "
    "preset_slug FROM routing_bindings WHERE behavior = :behavior"
)
LATEST_PRESET = (
    "SELECT version, content_hash, source, created_at, content FROM preset_versions "
    "WHERE behavior = :behavior ORDER BY version DESC LIMIT 1"
)
SPENT = (
    "SELECT COALESCE(SUM(CASE WHEN status = 'reserved' THEN "
    "(CASE WHEN at >= :live_since THEN estimate_usd ELSE 0 END) ELSE cost_usd END), 0) "
    "FROM key_spend WHERE behavior = :behavior AND at >= :start AND at < :end"
)
# the running total (migration 0010b_spend_totals): a key's settled spend in its current period,
# summed once per period; live reservations from the partial index ix_key_spend_reserved
TOTAL = (
    "SELECT period_start, period_end, settled_usd FROM key_spend_totals WHERE behavior = :behavior"
)
SETTLED = (
    "SELECT COALESCE(SUM(cost_usd), 0) FROM key_spend WHERE behavior = :behavior "
    "AND status <> 'reserved' AND at >= :start AND at < :end"
)
STORE_TOTAL = (
    "INSERT INTO key_spend_totals (behavior, period_start, period_end, settled_usd) "
    "VALUES (:behavior, :start, :end, :settled) ON CONFLICT (behavior) DO UPDATE SET "
    "period_start = excluded.period_start, period_end = excluded.period_end, "
    "settled_usd = excluded.settled_usd"
)
LIVE = (
    "SELECT COALESCE(SUM(estimate_usd), 0) FROM key_spend WHERE behavior = :behavior "
    "AND status = 'reserved' AND at >= :live_since AND at >= :start AND at < :end"
)
RESERVE = (
    "INSERT INTO key_spend (behavior, at, run_id, transport, model, estimate_usd, cost_usd, "
    "status, tokens_in, tokens_out) VALUES (:behavior, :at, :run_id, :transport, :model, "
    ":estimate, 0, 'reserved', 0, 0) RETURNING id"
)
SETTLE = (
    "UPDATE key_spend SET cost_usd = :cost, status = :status, tokens_in = :tokens_in, "
    "tokens_out = :tokens_out, settled_at = :settled_at, transport = COALESCE(:transport, "
    "transport), model = COALESCE(:model, model) WHERE id = :id"
)

_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")


def pyformat(sql: str) -> str:
    """`sql` with psycopg's `%(name)s` placeholders."""
    return _NAMED.sub(r"%(\1)s", sql)


def _binding_columns(sql: str) -> TextualSelect:
    return text(sql).columns(
        column("behavior"),
        column("key_ref"),
        column("cap_usd"),
        column("cadence"),
        column("transports", _JSON),
        column("guardrails", _JSON),
        column("openrouter_key_hash"),
        column("preset_slug"),
    )


SQL_BINDING = _binding_columns(BINDING)
_SQL_BINDING_FOR_UPDATE = _binding_columns(BINDING + " FOR UPDATE")
_SQL_LATEST_PRESET = text(LATEST_PRESET).columns(
    column("version"),
    column("content_hash"),
    column("source"),
    column("created_at", _AT),
    column("content", _JSON),
)
_SQL_SPENT = text(SPENT).bindparams(
    bindparam("start", type_=_AT), bindparam("end", type_=_AT), bindparam("live_since", type_=_AT)
)
_SQL_RESERVE = text(RESERVE).bindparams(bindparam("at", type_=_AT))
_SQL_TOTAL_FOR_UPDATE = text(TOTAL + " FOR UPDATE").columns(
    column("period_start", _AT), column("period_end", _AT), column("settled_usd")
)
_SQL_SETTLED = text(SETTLED).bindparams(bindparam("start", type_=_AT), bindparam("end", type_=_AT))
_SQL_STORE_TOTAL = text(STORE_TOTAL).bindparams(
    bindparam("start", type_=_AT), bindparam("end", type_=_AT)
)
_SQL_LIVE = text(LIVE).bindparams(
    bindparam("start", type_=_AT), bindparam("end", type_=_AT), bindparam("live_since", type_=_AT)
)
SQL_SETTLE = text(SETTLE).bindparams(bindparam("settled_at", type_=_AT))


class SqlAlchemyTx:
    """The budget statements through SQLAlchemy, the binding row locked FOR UPDATE
    (PostgreSQL; SQLite's transactions take its write lock instead)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def binding(self, behavior: str) -> BindingRow | None:
        row = self.conn.execute(_SQL_BINDING_FOR_UPDATE, {"behavior": behavior}).first()
        if row is None:
            return None
        return BindingRow(**{**row._asdict(), "cap_usd": float(row.cap_usd)})

    def latest_preset(self, behavior: str) -> PresetHead | None:
        row = self.conn.execute(_SQL_LATEST_PRESET, {"behavior": behavior}).first()
        return PresetHead(*row) if row is not None else None

    def spent(self, behavior: str, start: datetime, end: datetime, live_since: datetime) -> float:
        params = {"behavior": behavior, "start": start, "end": end, "live_since": live_since}
        return float(self.conn.execute(_SQL_SPENT, params).scalar_one())

    def running_spent(
        self, behavior: str, start: datetime, end: datetime, live_since: datetime
    ) -> float:
        # the total's row lock first, then the sums (see migration 0010b_spend_totals)
        key = {"behavior": behavior, "start": start, "end": end}
        row = self.conn.execute(_SQL_TOTAL_FOR_UPDATE, {"behavior": behavior}).first()
        if row is not None and (row.period_start, row.period_end) == (start, end):
            settled = float(row.settled_usd)
        else:
            settled = float(self.conn.execute(_SQL_SETTLED, key).scalar_one())
            self.conn.execute(_SQL_STORE_TOTAL, {**key, "settled": settled})
        live = self.conn.execute(_SQL_LIVE, {**key, "live_since": live_since}).scalar_one()
        return settled + float(live)

    def insert_reservation(
        self,
        behavior: str,
        at: datetime,
        run_id: str | None,
        transport: str,
        model: str,
        estimate: float,
    ) -> int:
        params = {
            "behavior": behavior,
            "at": at,
            "run_id": run_id,
            "transport": transport,
            "model": model,
            "estimate": estimate,
        }
        return int(self.conn.execute(_SQL_RESERVE, params).scalar_one())
