"""Notion's share of the reactions: the rows the operator reads there (a behavior's row in the
Promotion Ledger, a gate failure's row in Gate Failures, a candidate's row in the week's
Promotion Reviews). `cleanday.notion.sender` writes them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday.budget.periods import period_bounds
from cleanday.chain import canonical_time
from cleanday.models import T_BEHAVIORS
from cleanday.notices import GateFailed, ReviewOpened, StateChanged
from cleanday.outbox import Message
from cleanday.reactions.base import Context

CHANNEL = "notion"

_SETTLED = sa.text(
    "SELECT COALESCE(SUM(cost_usd), 0) FROM key_spend WHERE behavior = :behavior "
    "AND status <> 'reserved' AND at >= :start AND at < :end"
)


def ledger_row(n: StateChanged, ctx: Context) -> Iterator[Message]:
    """The behavior's Promotion Ledger row, as it now is (each change its own message, so the
    row in Notion follows every change in order)."""
    assert n.behavior is not None
    payload: dict[str, Any] = {
        "behavior": n.behavior,
        "tier": n.tier.value,
        "status": n.status.value,
        "clean_days": n.clean_days,
        "last_gate_failure": n.last_gate_failure.isoformat() if n.last_gate_failure else None,
        "last_failure_gate": n.last_failure_gate,
        "last_failure_reason": n.last_failure_reason,
        "preset_version": n.preset_version,
        "updated": n.at.isoformat(),
        **_spend(ctx.conn, n.behavior, ctx.now, ctx.timezone),
    }
    # the row and its time: a change back to an earlier row is a new key (its `updated` moved)
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    key = f"ledger_row:{n.behavior}:{canonical_time(n.at)}:{digest}"
    yield Message(CHANNEL, "ledger_row", key, payload, n.behavior)


def _spend(conn: Connection, behavior: str, now: datetime, timezone: str) -> dict[str, Any]:
    """The key's cap and its settled spend in the current budget period, in the ledger's time
    zone (a month begins at local midnight on the 1st, as the budget gate counts it)."""
    work_order = conn.execute(
        sa.select(T_BEHAVIORS.c.work_order).where(T_BEHAVIORS.c.name == behavior)
    ).scalar()
    key = (work_order or {}).get("key") or {}
    if "cap_usd" not in key:
        return {"spend_usd": None, "cap_usd": None}
    start, end = period_bounds(key.get("cadence", "month"), now, timezone)
    spent = conn.execute(_SETTLED, {"behavior": behavior, "start": start, "end": end}).scalar()
    return {"spend_usd": round(float(spent or 0), 4), "cap_usd": float(key["cap_usd"])}


def gate_failure_rows(n: GateFailed, ctx: Context) -> Iterator[Message]:
    """One Gate Failures row per failed gate."""
    for g in n.gates:
        yield Message(
            CHANNEL,
            "gate_failure_row",
            f"gate_failure:{n.behavior}:{n.run_id}:{g.name}",
            {
                "behavior": n.behavior,
                "date": n.at.isoformat(),
                "workflow_id": n.workflow_id,
                "run_id": n.run_id,
                "gate": g.name,
                "reason": g.reason,
                "tier": n.tier.value,
                "tier_change": (f"{n.tier.value} → {n.demoted_to.value}" if n.demoted_to else None),
            },
            n.behavior,
        )


def review_rows(n: ReviewOpened, ctx: Context) -> Iterator[Message]:
    """One Promotion Reviews row per candidate, its Decision left for the operator (the sender
    adds the evidence of the streak as it writes the row)."""
    for c in n.candidates:
        yield Message(
            CHANNEL,
            "review_row",
            f"review_row:{n.week}:{c.behavior}",
            {
                "week": n.week.isoformat(),
                "behavior": c.behavior,
                "from_tier": c.tier.value,
                "to_tier": c.tier.up().value,
                "clean_days": c.clean_days,
            },
            c.behavior,
        )
