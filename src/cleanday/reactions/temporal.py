"""Temporal's share of the reactions: a sign-off wakes the runs that wait for it, and a
registration or status change brings the behavior's Schedule in line at once.

One message per run whose item was signed off, delivered right after the commit by the process
that has a Temporal client (`cleanday.runtime.wakeups`). The signal only wakes the run: it still
asks the ledger for its permit before acting, and a run that is never woken finds its sign-off
at its own next check of the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator

from cleanday.chain import canonical_time
from cleanday.notices import ItemsSignedOff, Registered, StatusChanged
from cleanday.outbox import Message
from cleanday.reactions.base import Context

CHANNEL = "temporal"


def sync_schedule(n: Registered | StatusChanged, ctx: Context) -> Iterator[Message]:
    """The behavior's Schedule made to match its Work Order and status right after the commit
    (created for a new behavior within seconds, not at a worker's next sync)."""
    assert n.behavior is not None
    if isinstance(n, Registered):
        key = f"schedule:{n.behavior}:v{n.version}"
    else:
        key = f"schedule:{n.behavior}:{n.to_status.value}:{canonical_time(n.at)}"
    # a target of its own: a server without Schedules never holds up the runs' wake-ups
    yield Message(
        CHANNEL,
        "sync_schedule",
        key,
        {"behavior": n.behavior},
        n.behavior,
        target=f"schedule:{n.behavior}",
    )


def wake_runs(n: ItemsSignedOff, ctx: Context) -> Iterator[Message]:
    told: set[str] = set()
    for item in n.items:
        if item.run_id in told:
            continue  # one wake-up per run, however many of its items were signed off
        told.add(item.run_id)
        yield Message(
            CHANNEL,
            "wake_run",
            f"wake:{n.behavior}:{item.item_id}:{n.action}",
            {
                "workflow_id": item.run_id,  # a run's ID is its workflow ID
                "action": n.action,
                "reason": n.reason,
                "item_id": item.item_id,
            },
            n.behavior,
        )
