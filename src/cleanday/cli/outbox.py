"""`cleanday outbox`: what waits for Slack, Notion and Temporal per target, a retry now, and a
logged drop (the only way a row leaves undelivered). Straight on the ledger database, as the
other read and write verbs."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from cleanday.cli import render
from cleanday.cli.common import friendly, open_ledger

app = typer.Typer(help="What waits in the outbox; retry or drop a row.")


def _ago(then: datetime, now: datetime) -> str:
    seconds = max(int((now - then).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


@app.callback(invoke_without_command=True)
@friendly
def outbox(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """What waits, per target: rows, since when, the next row's attempts and last error."""
    if ctx.invoked_subcommand is not None:
        return
    from cleanday import outbox_admin

    with open_ledger() as service:
        lines = outbox_admin.waiting(service.engine)
        now = service.clock()
    if as_json:
        typer.echo(json.dumps([w.as_json() for w in lines], indent=2))
        return
    if not lines:
        typer.echo("The outbox is empty: everything was delivered.")
        return
    header = (
        "CHANNEL",
        "TARGET",
        "ROWS",
        "SINCE",
        "NEXT ROW",
        "ATTEMPTS",
        "NEXT TRY",
        "LAST ERROR",
    )
    rows = [
        (
            w.channel,
            w.target or "(not routed yet)",
            str(w.rows),
            _ago(w.since, now),
            f"{w.head_id} {w.head_kind}",
            str(w.attempts),
            "now" if w.next_attempt_at is None or w.next_attempt_at <= now
            else w.next_attempt_at.astimezone(UTC).strftime("%H:%M:%S UTC"),
            (w.last_error or "")[:80],
        )
        for w in lines
    ]  # fmt: skip
    typer.echo(render.table(header, rows))


@app.command("retry")
@friendly
def retry(
    row_id: Annotated[int | None, typer.Argument(metavar="ID", help="an outbox row")] = None,
    all_rows: Annotated[bool, typer.Option("--all", help="every waiting row")] = False,
) -> None:
    """Try a waiting row (or every one) at the next drain, whatever its back-off."""
    from cleanday import outbox_admin

    if (row_id is None) == (not all_rows):
        typer.echo("error: name one row (cleanday outbox retry ID) or --all", err=True)
        raise typer.Exit(2)
    with open_ledger() as service:
        n = outbox_admin.retry(service.engine, row_id)
    what = f"row {row_id}" if row_id is not None else "every waiting row"
    typer.echo(f"{what}: due at the next drain ({n} row(s) were backing off)")


@app.command("drop")
@friendly
def drop(
    row_id: Annotated[int, typer.Argument(metavar="ID", help="an outbox row")],
    reason: Annotated[str, typer.Option("--reason", help="why it is never to be delivered")],
) -> None:
    """Take a row out of the outbox undelivered; the reason and who are kept and logged."""
    from cleanday import outbox_admin

    with open_ledger() as service:
        row = outbox_admin.drop(
            service.engine, row_id, reason=reason, by=getpass.getuser(), now=service.clock()
        )
    typer.echo(f"row {row_id} ({row['channel']} {row['kind']}) dropped: {reason}")
