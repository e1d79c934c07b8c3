"""Notion's share of the reactions: the rows the operator reads there (a gate failure's row in
Gate Failures, a candidate's row in the week's Promotion Reviews)."""

from __future__ import annotations

from collections.abc import Iterator

from cleanday.notices import GateFailed, ReviewOpened
from cleanday.outbox import Message
from cleanday.reactions.base import Context

CHANNEL = "notion"


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
            },
            n.behavior,
        )


def review_rows(n: ReviewOpened, ctx: Context) -> Iterator[Message]:
    """One Promotion Reviews row per candidate, its Decision left for the operator."""
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
