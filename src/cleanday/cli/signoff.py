"""Sign-offs on runs in flight: `cleanday batch list|approve|reject` (tier A's proposals) and
`cleanday release` (a tier-B staged item). Each is recorded in the ledger; the wake-ups of the
waiting runs it queues are delivered right after the commit (`cleanday.runtime.wakeups`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from cleanday.cli import render
from cleanday.cli.common import current_settings, friendly, open_ledger, read_ledger

if TYPE_CHECKING:
    from cleanday.outbox import Delivered

_ITEMS = "item IDs (each its run's workflow ID); none: the whole pending batch"

app = typer.Typer()
batch = typer.Typer(help="Tier A's batch of proposals: list, approve, reject.")


@batch.command("list")
@friendly
def batch_list(
    name: Annotated[str, typer.Argument(help="the behavior")],
    every: Annotated[bool, typer.Option("--all", help="decided items too")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the items whole, as JSON")] = False,
) -> None:
    """The proposals (A) and staged items (B) awaiting sign-off, each with what it would do."""
    with read_ledger() as service:
        rows = service.items(name, status=None if every else "pending")
    typer.echo(render.items(name, [r.model_dump(mode="json") for r in rows], every, as_json))


@batch.command("approve")
@friendly
def batch_approve(
    name: Annotated[str, typer.Argument(help="the behavior")],
    items: Annotated[list[str] | None, typer.Argument(help=_ITEMS)] = None,
) -> None:
    """Approve tier-A proposals; their runs then ask for a permit and act."""
    _sign_off("approve", name, items or None, "")


@batch.command("reject")
@friendly
def batch_reject(
    name: Annotated[str, typer.Argument(help="the behavior")],
    reason: Annotated[str, typer.Option(help="why (recorded as an override)")],
    items: Annotated[list[str] | None, typer.Argument(help=_ITEMS)] = None,
) -> None:
    """Reject tier-A proposals: an operator override (the clean-day clock restarts)."""
    _sign_off("reject", name, items or None, reason)


@app.command("release")
@friendly
def release(
    name: Annotated[str, typer.Argument(help="the behavior")],
    item: Annotated[str, typer.Argument(help="the staged item's ID")],
) -> None:
    """Release one tier-B staged item; its run then asks for a permit and acts."""
    _sign_off("release", name, [item], "")


def _sign_off(verb: str, name: str, items: Sequence[str] | None, reason: str) -> None:
    """Record the sign-off in the ledger; its wake-ups are delivered right after the commit,
    as the service delivers them (best effort: a run that is not told finds the sign-off
    itself at its next check of the ledger)."""
    from cleanday.runtime.wakeups import NO_RUN, connect_to, wake_ups

    settings = current_settings()
    told: list[Delivered] = []
    with open_ledger() as service:
        delivery = wake_ups(
            service.engine,
            connect_to(settings),
            clock=service.clock,
            task_queue=settings.task_queue,
        )
        service.subscribe(lambda written: told.extend(delivery.after_commit(written)))
        try:
            if verb == "approve":
                result = service.approve(name, items, door="cli")
            elif verb == "reject":
                result = service.reject(name, items, reason, door="cli")
            else:
                result = service.release(name, items[0] if items else "", door="cli")
        finally:
            delivery.close()
    if not result.items:
        typer.echo(f"{name}: nothing pending to {verb}")
        return
    typer.echo(f"{name}: {result.action} {', '.join(result.items)}")
    failed = next((d for d in told if not d.ok), None)
    if failed is not None:
        typer.echo(
            f"note: could not tell the runs now (Temporal at {settings.temporal_address}: "
            f"{failed.error}); each finds the sign-off at its next check of the ledger",
            err=True,
        )
        return
    missing = sorted(str(d.row.payload["item_id"]) for d in told if d.note == NO_RUN)
    if missing:
        typer.echo(f"note: no run in flight for {', '.join(missing)}", err=True)
