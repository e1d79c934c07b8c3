"""The `cleanday` command line as one typer app, assembled from one module per group of verbs.

A new verb goes into the module of its group (or a new module, added below); a verb imports
what it needs inside its function, so that starting the CLI stays cheap.
"""

from __future__ import annotations

import typer

from cleanday.cli import (
    behaviors,
    doctor,
    ledger,
    notion,
    outbox,
    review,
    router,
    runs,
    scaffold,
    signoff,
    stack,
    stackops,
)

app = typer.Typer(no_args_is_help=True, help="cleanday: trust for autonomous AI behaviors.")
app.add_typer(stack.app)  # version, up, serve, worker, migrate, demo, smoke
app.add_typer(stackops.app)  # down, logs
app.add_typer(doctor.app)  # status
app.add_typer(scaffold.app)  # new
app.add_typer(behaviors.app)  # register, show, override, pause, resume, retire
app.add_typer(ledger.app, name="ledger")  # the Pane of Glass, close-day, verify, ...
app.add_typer(review.app, name="review")
app.add_typer(signoff.batch, name="batch")
app.add_typer(signoff.app)  # release
app.add_typer(router.app)  # keys
app.add_typer(router.preset, name="preset")
app.add_typer(notion.app, name="notion")  # init, webhook-token
app.add_typer(outbox.app, name="outbox")  # what waits, retry, drop
app.add_typer(runs.app)  # run
