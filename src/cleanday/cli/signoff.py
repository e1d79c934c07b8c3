"""Sign-offs on runs in flight: `cleanday batch list|approve|reject` (tier A's proposals) and
`cleanday release` (a tier-B staged item). Each is recorded in the ledger first, then the
waiting runs are told."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cleanday.cli.common import current_settings, friendly, open_ledger, table

if TYPE_CHECKING:
    from cleanday.config import Settings

_ITEMS = "item IDs (each its run's workflow ID); none: the whole pending batch"

app = typer.Typer()
batch = typer.Typer(help="Tier A's batch of proposals: list, approve, reject.")


@batch.command("list")
@friendly
def batch_list(
    name: Annotated[str, typer.Argument(help="the behavior")],
    every: Annotated[bool, typer.Option("--all", help="decided items too")] = False,
) -> None:
    """The proposals (A) and staged items (B) awaiting sign-off."""
    with open_ledger() as service:
        rows = service.items(name, status=None if every else "pending")
    if not rows:
        typer.echo(f"{name}: nothing awaits sign-off" if not every else f"{name}: no items")
        return
    header = ("ITEM", "KIND", "STATUS", "CREATED", "EXPIRES")
    lines = [
        (
            r.item_id,
            r.kind,
            r.status,
            r.created_at.isoformat(timespec="seconds"),
            r.expires_at.isoformat(timespec="seconds") if r.expires_at else "-",
        )
        for r in rows
    ]
    typer.echo(table(header, lines))


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
    """Record the sign-off in the ledger, then tell the runs (best effort: a run that is not
    told finds the sign-off itself at its next check of the ledger)."""
    import asyncio

    with open_ledger() as service:
        if verb == "approve":
            result = service.approve(name, items)
        elif verb == "reject":
            result = service.reject(name, items, reason)
        else:
            result = service.release(name, items[0] if items else "")
    if not result.items:
        typer.echo(f"{name}: nothing pending to {verb}")
        return
    # the signal is named as the verb
    args: tuple[Any, ...] = (reason or "rejected by the operator",) if verb == "reject" else ()
    told, problem = asyncio.run(_tell_runs(current_settings(), result.items, verb, *args))
    typer.echo(f"{name}: {result.action} {', '.join(result.items)}")
    if problem:
        typer.echo(
            f"note: could not tell the runs now ({problem}); each finds the sign-off at its "
            "next check of the ledger",
            err=True,
        )
    elif len(told) < len(result.items):
        missing = sorted(set(result.items) - set(told))
        typer.echo(f"note: no run in flight for {', '.join(missing)}", err=True)


async def _tell_runs(
    settings: Settings, items: Sequence[str], signal: str, *args: Any
) -> tuple[list[str], str | None]:
    import asyncio

    from temporalio.client import Client

    from cleanday.runtime.operator import signal_runs

    try:
        client = await asyncio.wait_for(
            Client.connect(settings.temporal_address, namespace=settings.temporal_namespace), 5.0
        )
        return await asyncio.wait_for(signal_runs(client, items, signal, *args), 10.0), None
    except Exception as exc:  # the ledger has the sign-off; the run's own check will find it
        return [], f"Temporal at {settings.temporal_address}: {exc or type(exc).__name__}"
