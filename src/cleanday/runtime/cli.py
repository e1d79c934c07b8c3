"""The runtime's commands: `cleanday worker`, `cleanday up`, `cleanday demo`."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from cleanday.config import Settings
from cleanday.errors import CleandayError


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


def _standalone() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True)
    register_commands(app)
    return app


if __name__ == "__main__":
    _standalone()()
