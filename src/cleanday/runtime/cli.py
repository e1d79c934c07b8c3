"""The runtime's commands: `cleanday worker`, `up`, `demo`, and the sign-offs on runs in flight
(`cleanday batch list|approve|reject`, `cleanday release`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Annotated

import typer

from cleanday.config import Settings
from cleanday.errors import CleandayError

_ITEMS = "item IDs (each its run's workflow ID); none: the whole pending batch"


def register_commands(app: typer.Typer) -> None:
    """Add the runtime's commands to the `cleanday` Typer app."""

    @app.command()
    def worker() -> None:
        """Run a worker: register the behaviors in CLEANDAY_BEHAVIORS_DIR, sync their schedules,
        run their runs; SIGINT/SIGTERM stop it gracefully."""
        from cleanday.runtime.worker import run_worker

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        try:
            asyncio.run(run_worker(Settings()))
        except CleandayError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    @app.command()
    def up() -> None:
        """Start the embedded stack: Temporal dev server, ledger service, local model provider
        and a worker, with the built-in behaviors. Ctrl-C stops it; run again to resume.
        Ports: TEMPORAL_ADDRESS, TEMPORAL_UI_PORT, CLEANDAY_PORT, CLEANDAY_LOCAL_PROVIDER_PORT."""
        from cleanday.runtime.embedded import up as run_up

        try:
            code = run_up(Settings(), out=typer.echo)
        except CleandayError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        raise typer.Exit(code)

    @app.command()
    def demo(
        weeks: Annotated[int, typer.Option(help="simulated weeks")] = 3,
    ) -> None:
        """Run the built-in behaviors through simulated weeks on Temporal's time-skipping test
        server: clean days, a Sunday review, a promotion, a demotion, the final ledger."""
        from cleanday.runtime.demo import run_demo

        try:
            asyncio.run(run_demo(weeks=weeks, out=typer.echo))
        except CleandayError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    batch_app = typer.Typer(help="Tier A's batch of proposals: list, approve, reject.")
    app.add_typer(batch_app, name="batch")

    @batch_app.command("list")
    def batch_list(
        name: Annotated[str, typer.Argument(help="the behavior")],
        every: Annotated[bool, typer.Option("--all", help="decided items too")] = False,
    ) -> None:
        """The proposals (A) and staged items (B) awaiting sign-off."""
        from cleanday.cli import friendly

        friendly(_list_items)(name, every)

    @batch_app.command("approve")
    def batch_approve(
        name: Annotated[str, typer.Argument(help="the behavior")],
        items: Annotated[list[str] | None, typer.Argument(help=_ITEMS)] = None,
    ) -> None:
        """Approve tier-A proposals; their runs then ask for a permit and act."""
        from cleanday.cli import friendly

        friendly(_sign_off)("approve", name, items or None, "")

    @batch_app.command("reject")
    def batch_reject(
        name: Annotated[str, typer.Argument(help="the behavior")],
        reason: Annotated[str, typer.Option(help="why (recorded as an override)")],
        items: Annotated[list[str] | None, typer.Argument(help=_ITEMS)] = None,
    ) -> None:
        """Reject tier-A proposals: an operator override (the clean-day clock restarts)."""
        from cleanday.cli import friendly

        friendly(_sign_off)("reject", name, items or None, reason)

    @app.command("release")
    def release(
        name: Annotated[str, typer.Argument(help="the behavior")],
        item: Annotated[str, typer.Argument(help="the staged item's ID")],
    ) -> None:
        """Release one tier-B staged item; its run then asks for a permit and acts."""
        from cleanday.cli import friendly

        friendly(_sign_off)("release", name, [item], "")


def _list_items(name: str, every: bool) -> None:
    from cleanday.cli import _service

    with _service() as service:
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
    widths = [max(len(c) for c in col) for col in zip(header, *lines, strict=True)]
    for line in (header, *lines):
        typer.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _sign_off(verb: str, name: str, items: Sequence[str] | None, reason: str) -> None:
    """Record the sign-off in the ledger; its wake-ups are delivered right after the commit,
    as the service delivers them (best effort: a run that is not told finds the sign-off
    itself at its next check of the ledger)."""
    from cleanday.cli import _service, _settings
    from cleanday.outbox import Delivered
    from cleanday.runtime.wakeups import NO_RUN, connect_to, wake_ups

    settings = _settings()
    told: list[Delivered] = []
    with _service() as service:
        delivery = wake_ups(service.engine, connect_to(settings), clock=service.clock)
        service.subscribe(lambda written: told.extend(delivery.after_commit(written)))
        try:
            if verb == "approve":
                result = service.approve(name, items)
            elif verb == "reject":
                result = service.reject(name, items, reason)
            else:
                result = service.release(name, items[0] if items else "")
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


def _standalone() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True)
    register_commands(app)
    return app


if __name__ == "__main__":
    _standalone()()
