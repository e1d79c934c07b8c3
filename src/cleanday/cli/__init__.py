"""The `cleanday` command line, assembled from one module per group of verbs.

A new verb goes into the module of its group (or a new module, added below); a verb imports
what it needs inside its function, so that starting the CLI stays cheap.
"""

from __future__ import annotations

import typer

from cleanday.cli import behaviors, ledger, review, router, signoff, stack

app = typer.Typer(no_args_is_help=True, help="cleanday: trust for autonomous AI behaviors.")
app.add_typer(stack.app)  # version, up, serve, worker, migrate, demo, smoke
app.add_typer(behaviors.app)  # register, show, override, pause, resume, retire
app.add_typer(ledger.app, name="ledger")  # the Pane of Glass, close-day, verify, ...
app.add_typer(review.app, name="review")
app.add_typer(signoff.batch, name="batch")
app.add_typer(signoff.app)  # release
app.add_typer(router.app)  # keys
app.add_typer(router.preset, name="preset")


def main() -> None:
    app()
