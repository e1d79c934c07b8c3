"""Temporal's share of the reactions: a sign-off wakes the runs that wait for it.

One message per run whose item was signed off, delivered right after the commit by the process
that has a Temporal client (`cleanday.runtime.wakeups`). The signal only wakes the run: it still
asks the ledger for its permit before acting, and a run that is never woken finds its sign-off
at its own next check of the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator

from cleanday.notices import ItemsSignedOff
from cleanday.outbox import Message
from cleanday.reactions.base import Context

CHANNEL = "temporal"


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
