"""`cleanday ledger`: the Pane of Glass, and the ledger's maintenance verbs (`close-day`,
`verify`, `rebuild`, `replay`)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cleanday.cli import render
from cleanday.cli.common import (
    current_settings,
    friendly,
    open_ledger,
    parse_date,
    read_ledger,
    today,
)

if TYPE_CHECKING:
    from cleanday.ledger import BehaviorRow

app = typer.Typer(help="The Pane of Glass and the ledger's maintenance commands.")


@app.callback(invoke_without_command=True)
@friendly
def ledger(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
    every: Annotated[bool, typer.Option("--all", help="retired behaviors too")] = False,
) -> None:
    """The Pane of Glass: every behavior's tier, status, clean days and last gate failure
    (retired ones with --all)."""
    if ctx.invoked_subcommand is not None:
        return
    with read_ledger() as service:
        rows = [r.model_dump(mode="json") for r in service.list_behaviors(include_retired=every)]
    typer.echo(render.ledger(rows, as_json))


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


REPLAY_FIELDS = ("tier", "status", "clean_days", "candidate", "last_gate_failure")


@app.command("replay")
@friendly
def replay(
    policy: Annotated[Path, typer.Option("--policy", help="a YAML policy file")],
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """What would change today under another policy (a backtest): each behavior whose tier,
    status, clean days, candidacy or last failure would differ, today's value against the
    policy's. --json lists every behavior's state under the policy, with its `changes`."""
    from cleanday.policy import load_policy

    if not policy.is_file():
        raise typer.BadParameter(f"{policy} does not exist", param_hint="--policy")
    other = load_policy(policy)
    with open_ledger() as service:
        with service.engine.connect() as conn:
            current = service.policy_of(conn)
        today_rows = {r.name: _pane_row(r) for r in service.replay(current)}
        rows = [_pane_row(r) for r in service.replay(other)]
    for row in rows:
        now = today_rows.get(row["name"], {})
        row["changes"] = {
            f: {"today": now.get(f), "policy": row[f]}
            for f in REPLAY_FIELDS
            if now.get(f) != row[f]
        }
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    changed = [r for r in rows if r["changes"]]
    if not changed:
        typer.echo(f"under {policy}, no behavior would differ from today ({len(rows)} replayed)")
        return
    typer.echo(f"under {policy}, {len(changed)} of {len(rows)} behaviors would differ from today:")
    lines = []
    for r in changed:
        for i, (f, change) in enumerate(r["changes"].items()):
            shown = [_cell(change["today"]), _cell(change["policy"])]
            lines.append((r["name"] if i == 0 else "", f, *shown))
    typer.echo(render.table(("BEHAVIOR", "FIELD", "TODAY", "UNDER POLICY"), lines))


def _pane_row(row: BehaviorRow) -> dict[str, Any]:
    return render.pane_row(row.model_dump(mode="json"))


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
