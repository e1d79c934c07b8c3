"""Slack's share of the reactions: the messages that tell the operator something happened (a
gate failure, a demotion, a promotion, a quarantine, the Sunday review)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from cleanday.chain import canonical_time
from cleanday.domain import EntryKind, Tier
from cleanday.models import T_ENTRIES, T_RUNS, T_STATES
from cleanday.notices import (
    Demoted,
    GateFailed,
    InfraErrored,
    Promoted,
    Quarantined,
    ReviewClosed,
    ReviewOpened,
    TierChanged,
)
from cleanday.outbox import Message
from cleanday.reactions.base import Context

CHANNEL = "slack"


def gate_failure_alert(n: GateFailed, ctx: Context) -> Iterator[Message]:
    """One alert per failing run, however many gates failed; when the run demoted its
    behavior, the demotion alert says it all instead."""
    if n.demoted_to is not None:
        return
    assert n.behavior is not None
    yield Message(
        CHANNEL,
        "gate_failure_alert",
        f"gate_alert:{n.behavior}:{n.run_id}",
        {
            "behavior": n.behavior,
            "at": n.at.isoformat(),
            "run_id": n.run_id,
            "workflow_id": n.workflow_id,
            "tier": n.tier.value,
            "gates": [{"name": g.name, "reason": g.reason} for g in n.gates],
        },
        n.behavior,
    )


def infra_error_alert(n: InfraErrored, ctx: Context) -> Iterator[Message]:
    """The deployment kept a run from running: the operator's to fix, not the behavior's."""
    assert n.behavior is not None
    yield Message(
        CHANNEL,
        "infra_error_alert",
        f"infra_alert:{n.behavior}:{n.run_id}",
        {
            "behavior": n.behavior,
            "run_id": n.run_id,
            "workflow_id": n.workflow_id,
            "kind": n.kind,
            "reason": n.reason,
            "note": "an infrastructure error: no demotion, no quarantine count, no clean day",
        },
        n.behavior,
    )


def demotion_alert(n: Demoted, ctx: Context) -> Iterator[Message]:
    yield Message(
        CHANNEL, "demotion_alert", f"demotion:{n.behavior}:{n.key}", _change(n), n.behavior
    )


def promotion_notice(n: Promoted, ctx: Context) -> Iterator[Message]:
    yield Message(
        CHANNEL, "promotion_notice", f"promotion:{n.behavior}:{n.key}", _change(n), n.behavior
    )


def _change(n: TierChanged) -> dict[str, Any]:
    payload: dict[str, Any] = {"behavior": n.behavior, "at": n.at.isoformat(), **n.facts()}
    if n.run_id is not None:
        payload["workflow_id"] = n.workflow_id  # the alert links to the run in Temporal's UI
    return payload


def quarantine_notice(n: Quarantined, ctx: Context) -> Iterator[Message]:
    lf = n.last_failure
    last = None
    if lf is not None:
        last = {"on": lf.on.isoformat(), "gate": lf.gate, "reason": lf.reason, "run_id": lf.run_id}
    yield Message(
        CHANNEL,
        "quarantine_notice",
        f"quarantine:{n.behavior}:{canonical_time(n.at)}",
        {
            "behavior": n.behavior,
            "at": n.at.isoformat(),
            "reason": f"{n.reason}; schedule paused until the operator resumes it",
            "last_failure": last,
        },
        n.behavior,
    )


def review_summary(n: ReviewOpened, ctx: Context) -> Iterator[Message]:
    yield Message(
        CHANNEL,
        "review_summary",
        f"review_summary:{n.week}",
        {
            "week": n.week.isoformat(),
            "candidates": [
                {"behavior": c.behavior, "tier": c.tier.value, "clean_days": c.clean_days}
                for c in n.candidates
            ],
        },
    )


def review_closed(n: ReviewClosed, ctx: Context) -> Iterator[Message]:
    yield Message(
        CHANNEL,
        "review_closed",
        f"review_closed:{n.week}",
        {"week": n.week.isoformat(), "promoted": list(n.promoted), "held": list(n.held)},
    )


def weekly_lines(n: ReviewOpened, ctx: Context) -> Iterator[Message]:
    """Sunday: one line per C or Wings behavior that ran clean over the week (no gate failure,
    no failed run), saying what it did: "publish_posts: 21 runs, 21 published. No anomalies."."""
    since = n.at - timedelta(days=7)
    conn = ctx.conn
    names = list(
        conn.execute(
            sa.select(T_STATES.c.behavior)
            .where(T_STATES.c.tier.in_([Tier.C.value, Tier.WINGS.value]))
            .where(T_STATES.c.status == "active")
            .order_by(T_STATES.c.behavior)
        ).scalars()
    )
    lines: list[dict[str, Any]] = []
    for name in names:
        outcomes: dict[str, int] = dict(
            conn.execute(
                sa.select(T_RUNS.c.outcome, sa.func.count())
                .where(T_RUNS.c.behavior == name, T_RUNS.c.finished_at > since)
                .where(T_RUNS.c.finished_at <= n.at)
                .group_by(T_RUNS.c.outcome)
            ).all()
        )
        kinds: dict[str, int] = dict(
            conn.execute(
                sa.select(T_ENTRIES.c.kind, sa.func.count())
                .where(T_ENTRIES.c.behavior == name, T_ENTRIES.c.at > since)
                .where(T_ENTRIES.c.at <= n.at)
                .where(T_ENTRIES.c.kind.in_([EntryKind.GATE_FAILED.value, EntryKind.ANOMALY.value]))
                .group_by(T_ENTRIES.c.kind)
            ).all()
        )
        runs = sum(outcomes.values())
        if not runs or outcomes.get("failed") or kinds.get(EntryKind.GATE_FAILED.value):
            continue  # did not run, or not clean
        lines.append(
            {
                "behavior": name,
                "runs": runs,
                "outcomes": {k: int(v) for k, v in sorted(outcomes.items())},
                "anomalies": int(kinds.get(EntryKind.ANOMALY.value, 0)),
            }
        )
    if lines:
        yield Message(
            CHANNEL, "weekly_lines", f"weekly_lines:{n.week}", {"week": n.week.isoformat(),
                                                               "lines": lines},
        )  # fmt: skip
