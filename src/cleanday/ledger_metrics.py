"""What the ledger knows, as Prometheus metrics, read from the ledger database when scraped.

Nothing here runs on the ingest path: a run report costs no metric update, and every instance
of the service reports the same totals (they are the database's, not one process's). Counters
are counts of rows the ledger never deletes (run reports, gate failures, tier changes), so they
only grow, as Prometheus expects of a counter. The Notion and Slack delivery latency (an outbox
row's `created_at` to its `delivered_at`) is a histogram of the delivered rows, bucketed by one
aggregate query: what the drainer wrote when it delivered, whichever instance that was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from cleanday.domain import EntryKind
from cleanday.models import T_ENTRIES, T_OUTBOX, T_RUNS
from cleanday.pane.overview import spend_of, utc
from cleanday.pane.waiting import outbox
from cleanday.router.tables import RoutingBinding

_BINDINGS = RoutingBinding.__table__  # type: ignore[attr-defined]

# the channels whose delivery latency is measured (their outbox rows' channel names)
LATENCY_CHANNELS = ("notion", "slack")
# seconds: from a delivery right after the commit, through Slack's grouping wait and Notion's
# pacing, to a target that was down for an hour
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class LedgerCollector(Collector):
    """Runs by behavior and outcome, gate failures by gate, promotions and demotions by
    behavior, spend and cap by key, outbox depth and oldest age by channel, and the Notion and
    Slack delivery latency."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime], timezone: str) -> None:
        self.engine = engine
        self.clock = clock
        self.timezone = timezone

    def describe(self) -> list[Metric]:
        return []  # nothing to read at registration: the database may not answer yet

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        with self.engine.connect() as conn:
            runs = CounterMetricFamily(
                "cleanday_runs", "Run reports recorded", labels=["behavior", "outcome"]
            )
            for behavior, outcome, n in conn.execute(
                sa.select(T_RUNS.c.behavior, T_RUNS.c.outcome, sa.func.count()).group_by(
                    T_RUNS.c.behavior, T_RUNS.c.outcome
                )
            ):
                runs.add_metric([behavior, outcome], n)
            yield runs

            gate = T_ENTRIES.c.data["gate"].as_string()
            failures = CounterMetricFamily(
                "cleanday_gate_failures", "Gate failures recorded", labels=["gate"]
            )
            for name, n in conn.execute(
                sa.select(gate, sa.func.count())
                .where(T_ENTRIES.c.kind == EntryKind.GATE_FAILED.value)
                .group_by(gate)
            ):
                failures.add_metric([name or "unknown"], n)
            yield failures

            changes = {
                kind: CounterMetricFamily(
                    f"cleanday_{kind.value}", f"Tier changes: {kind.value}", labels=["behavior"]
                )
                for kind in (EntryKind.PROMOTED, EntryKind.DEMOTED)
            }
            for behavior, kind, n in conn.execute(
                sa.select(T_ENTRIES.c.behavior, T_ENTRIES.c.kind, sa.func.count())
                .where(T_ENTRIES.c.kind.in_([k.value for k in changes]))
                .group_by(T_ENTRIES.c.behavior, T_ENTRIES.c.kind)
            ):
                changes[EntryKind(kind)].add_metric([behavior], n)
            yield from changes.values()

            yield from self._spend(conn, now)
            yield from self._outbox(conn, now)
            yield self._latency(conn)

    def _spend(self, conn: sa.Connection, now: datetime) -> Iterator[Metric]:
        keys: dict[str, str] = dict(
            conn.execute(sa.select(_BINDINGS.c.behavior, _BINDINGS.c.key_ref)).all()  # type: ignore[arg-type]
        )
        labels = ["behavior", "key"]
        spend = GaugeMetricFamily(
            "cleanday_spend_usd", "Spend in the key's current period", labels=labels
        )
        cap = GaugeMetricFamily("cleanday_spend_cap_usd", "The key's cap per period", labels=labels)
        for behavior, s in sorted(spend_of(conn, list(keys), now, self.timezone).items()):
            spend.add_metric([behavior, keys[behavior]], s.spent_usd)
            cap.add_metric([behavior, keys[behavior]], s.cap_usd)
        yield spend
        yield cap

    def _outbox(self, conn: sa.Connection, now: datetime) -> Iterator[Metric]:
        # by channel: what the outbox's rows name as their target today
        depth = GaugeMetricFamily(
            "cleanday_outbox_depth", "Outbox rows not yet delivered", labels=["target"]
        )
        age = GaugeMetricFamily(
            "cleanday_outbox_oldest_age_seconds",
            "Age of the oldest undelivered outbox row",
            labels=["target"],
        )
        for line in outbox(conn):
            depth.add_metric([line.channel], line.waiting)
            age.add_metric([line.channel], max((now - utc(line.oldest)).total_seconds(), 0.0))
        yield depth
        yield age

    def _latency(self, conn: sa.Connection) -> Metric:
        o = T_OUTBOX.c
        seconds = _seconds_between(conn.dialect.name, o.created_at, o.delivered_at)
        delivered = (
            sa.select(o.channel, seconds.label("s"))
            .where(o.channel.in_(LATENCY_CHANNELS), o.delivered_at.is_not(None))
            .subquery()
        )
        s = delivered.c.s
        query = sa.select(
            delivered.c.channel,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(s), 0.0),
            *(sa.func.sum(sa.case((s <= le, 1), else_=0)) for le in LATENCY_BUCKETS),
        ).group_by(delivered.c.channel)
        found = {row[0]: row[1:] for row in conn.execute(query)}
        family = HistogramMetricFamily(
            "cleanday_outbox_delivery_latency_seconds",
            "From an outbox row's creation to its delivery, per channel (Notion, Slack)",
            labels=["channel"],
        )
        for channel in LATENCY_CHANNELS:
            count, total, *under = found.get(channel, (0, 0.0, *[0] * len(LATENCY_BUCKETS)))
            buckets = [
                (_le(le), float(n or 0)) for le, n in zip(LATENCY_BUCKETS, under, strict=True)
            ]
            family.add_metric([channel], [*buckets, ("+Inf", float(count))], float(total))
        return family


def _seconds_between(dialect: str, start: Any, end: Any) -> sa.ColumnElement[Any]:
    """`end - start` in seconds, in SQL: PostgreSQL subtracts timestamps; SQLite keeps them as
    text, which `julianday` reads (fractions of a second included)."""
    if dialect == "sqlite":
        return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0
    return sa.extract("epoch", end - start)


def _le(bound: float) -> str:
    return repr(float(bound))
