"""The evidence a Promotion Reviews row shows for a candidate: the runs of its clean streak and
their spend, its anomalies and the operator's overrides, read from the ledger database."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday.domain import EntryKind
from cleanday.models import T_ENTRIES, T_RUNS, T_STATES


def streak_evidence(conn: Connection, behavior: str) -> dict[str, Any]:
    """What the streak holds: its runs and their spend, its anomalies and overrides, since it
    began (the behavior reached its tier, or the day after its last gate failure)."""
    r, e, s = T_RUNS.c, T_ENTRIES.c, T_STATES.c
    state = conn.execute(
        sa.select(s.tier_since, s.last_gate_failure).where(s.behavior == behavior)
    ).first()
    starts = [datetime.min.replace(tzinfo=UTC)]
    if state is not None and state.tier_since is not None:
        starts.append(state.tier_since)
    if state is not None and state.last_gate_failure is not None:
        day_after = state.last_gate_failure + timedelta(days=1)
        starts.append(datetime.combine(day_after, time(), tzinfo=UTC))
    since = max(starts)
    runs, spend = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(r.cost_usd), 0.0)).where(
            r.behavior == behavior, r.finished_at >= since
        )
    ).one()
    kinds: dict[str, int] = dict(
        conn.execute(  # type: ignore[arg-type]
            sa.select(e.kind, sa.func.count())
            .where(
                e.behavior == behavior,
                e.at >= since,
                e.kind.in_([EntryKind.ANOMALY.value, EntryKind.OVERRIDE.value]),
            )
            .group_by(e.kind)
        ).all()
    )
    return {
        "runs": int(runs),
        "spend_usd": round(float(spend), 4),
        "anomalies": int(kinds.get(EntryKind.ANOMALY.value, 0)),
        "overrides": int(kinds.get(EntryKind.OVERRIDE.value, 0)),
    }
