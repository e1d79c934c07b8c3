"""`cleanday review`: the Sunday review's candidates, the operator's decisions, its close."""

from __future__ import annotations

from typing import Annotated

import typer

from cleanday.cli import render
from cleanday.cli.common import (
    current_settings,
    friendly,
    open_ledger,
    parse_sunday,
    read_ledger,
    today,
)
from cleanday.domain import Decision
from cleanday.errors import CleandayError

app = typer.Typer(help="The Sunday review: candidates, decisions, close.")


@app.callback(invoke_without_command=True)
@friendly
def review(
    ctx: typer.Context,
    decide: Annotated[
        list[str] | None, typer.Option("--decide", help="NAME=promote|hold (repeatable)")
    ] = None,
    week: Annotated[str, typer.Option(help="the review's Sunday; default this week")] = "",
    by: Annotated[str, typer.Option(help="who decided")] = "operator",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """This week's promotion candidates; --decide records promote or hold, on the review's
    Sunday only (each decision it can; a refused one is reported and the exit code is 1)."""
    if ctx.invoked_subcommand is not None:
        return
    from cleanday.clock import review_sunday

    sunday = parse_sunday(week, "--week") if week else review_sunday(today(current_settings()))
    decisions: list[tuple[str, Decision]] = []
    for item in decide or []:
        name, sep, value = item.partition("=")
        if not sep or value.lower() not in {d.value for d in Decision}:
            raise typer.BadParameter(
                f"{item!r}: write NAME=promote or NAME=hold", param_hint="--decide"
            )
        decisions.append((name, Decision(value.lower())))
    refused = 0
    with open_ledger() if decisions else read_ledger() as service:
        for name, decision in decisions:
            try:  # one refusal does not stop the others; the exit code still says so
                service.decide(name, sunday, decision, by, door="cli")
            except CleandayError as exc:
                typer.echo(f"error: {exc}", err=True)
                refused += 1
                continue
            typer.echo(f"{name}: {decision.value} recorded for the review of {sunday.isoformat()}")
        rows = [r.model_dump(mode="json") for r in service.candidates(sunday)]
        recorded = [d.model_dump(mode="json") for d in service.decisions(sunday)] if as_json else []
    if as_json or not decisions:
        typer.echo(render.review(sunday.isoformat(), rows, recorded, as_json))
    if refused:
        raise typer.Exit(1)


@app.command("close")
@friendly
def close(
    week: Annotated[str, typer.Option(help="the review's Sunday, YYYY-MM-DD")],
) -> None:
    """Close a Sunday review: promote each candidate marked Promote (idempotent)."""
    sunday = parse_sunday(week, "--week")
    with open_ledger() as service:
        result = service.close_sunday(sunday)
    if result.already_closed:
        typer.echo(f"the review of {sunday.isoformat()} was already closed; nothing changed")
        return
    typer.echo(
        f"review {sunday.isoformat()} closed: promoted: {', '.join(result.promoted) or 'none'}; "
        f"held: {', '.join(result.held) or 'none'}"
    )
