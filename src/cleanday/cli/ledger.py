"""`cleanday ledger`: the Pane of Glass, and the ledger's maintenance verbs (`close-day`,
`verify`, `rebuild`, `replay`)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from cleanday.cli.common import (
    current_settings,
    friendly,
    open_ledger,
    parse_date,
    render_table,
    today,
)

app = typer.Typer(help="The Pane of Glass and the ledger's maintenance commands.")


@app.callback(invoke_without_command=True)
@friendly
def ledger(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """The Pane of Glass: every behavior's tier, status, clean days and last gate failure."""
    if ctx.invoked_subcommand is not None:
        return
    from cleanday.service.serialize import pane_row

    with open_ledger() as service:
        rows = [pane_row(r) for r in service.list_behaviors()]
    typer.echo(json.dumps(rows, indent=2) if as_json else render_table(rows))


@app.command("close-day")
@friendly
def close_day(
    day: Annotated[str, typer.Option("--date", help="YYYY-MM-DD; default yesterday")] = "",
) -> None:
    """Close a day in the ledger's time zone (safe to run twice)."""
    d = parse_date(day, "--date") if day else today(current_settings()) - timedelta(days=1)
    with open_ledger() as service:
        result = service.close_day(d)
    if result.already_closed:
        typer.echo(f"day {d.isoformat()} was already closed; nothing changed")
        return
    typer.echo(
        f"day {d.isoformat()} closed: {result.behaviors} behavior(s) refreshed, "
        f"{result.entries_folded} entries folded, demoted: {', '.join(result.demoted) or 'none'}, "
        f"quarantined: {', '.join(result.quarantined) or 'none'}"
    )


@app.command("verify")
@friendly
def verify() -> None:
    """Check the hash chain; exits non-zero naming every bad entry."""
    with open_ledger() as service:
        result = service.verify()
    if result.ok:
        typer.echo(result.summary())
        return
    typer.echo(f"error: {result.summary()}", err=True)
    raise typer.Exit(1)


@app.command("rebuild")
@friendly
def rebuild() -> None:
    """Recompute every materialized state from the entries; report differences."""
    with open_ledger() as service:
        result = service.rebuild()
    if not result.differences:
        typer.echo(
            f"rebuilt {result.behaviors} behaviors from {result.entries} entries: no difference"
        )
        return
    typer.echo(
        f"rebuilt {result.behaviors} behaviors from {result.entries} entries; "
        f"{len(result.differences)} stored value(s) differed and were fixed:"
    )
    for d in result.differences:
        typer.echo(f"  {d.behavior}.{d.field}: stored {d.stored!r}, rebuilt {d.rebuilt!r}")


@app.command("replay")
@friendly
def replay(
    policy: Annotated[Path, typer.Option("--policy", help="a YAML policy file")],
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """What every behavior's state would be today under another policy (a backtest)."""
    from cleanday.policy import load_policy
    from cleanday.service.serialize import pane_row

    if not policy.is_file():
        raise typer.BadParameter(f"{policy} does not exist", param_hint="--policy")
    with open_ledger() as service:
        rows = [pane_row(r) for r in service.replay(load_policy(policy))]
    typer.echo(json.dumps(rows, indent=2) if as_json else render_table(rows))
