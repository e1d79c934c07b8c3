"""The operator's sign-offs on runs in flight: record them in the ledger, then tell the runs.

A run's pending item ID is its workflow ID, so telling the run is one signal to that workflow.
The ledger is written first: the run's act step asks the ledger for its permit, so a signal
without the ledger's record would still not act.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from workflows.behavior_run import BehaviorRun

from cleanday.ledger_client import LedgerClient


def _items_of(result: dict[str, Any], asked: list[str] | None) -> list[str]:
    if asked is not None:
        return asked
    inner = result.get("result", result)
    items = inner.get("items", []) if isinstance(inner, dict) else inner
    return [str(i if not isinstance(i, dict) else i.get("item_id") or i.get("id")) for i in items]


async def signal_runs(client: Client, items: Iterable[str], signal: str, *args: Any) -> list[str]:
    """Send `signal` to the run of each item; returns the items whose run was told."""
    told: list[str] = []
    for item in items:
        handle = client.get_workflow_handle(item)
        try:
            await handle.signal(signal, *args)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            continue  # the run already finished (or was never a workflow here): nothing to tell
        told.append(item)
    return told


async def approve_batch(
    client: Client, ledger: LedgerClient, behavior: str, items: list[str] | None = None
) -> list[str]:
    """Approve tier-A proposals (all pending when `items` is None); the runs then act."""
    result = await ledger.approve(behavior, items)
    return await signal_runs(client, _items_of(result, items), BehaviorRun.approve.__name__)


async def reject_batch(
    client: Client,
    ledger: LedgerClient,
    behavior: str,
    reason: str,
    items: list[str] | None = None,
) -> list[str]:
    """Reject tier-A proposals (an override in the ledger); the runs end without acting."""
    result = await ledger.reject(behavior, reason, items)
    return await signal_runs(client, _items_of(result, items), BehaviorRun.reject.__name__, reason)


async def release_item(client: Client, ledger: LedgerClient, behavior: str, item: str) -> bool:
    """Release one tier-B staged item; its run then acts."""
    await ledger.release(behavior, item)
    return bool(await signal_runs(client, [item], BehaviorRun.release.__name__))
