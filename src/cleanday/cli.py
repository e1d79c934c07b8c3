"""The `cleanday` command line."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="cleanday: trust for autonomous AI behaviors.")


@app.command()
def version() -> None:
    """Print cleanday's version."""
    from cleanday import __version__

    typer.echo(__version__)


def main() -> None:
    app()
