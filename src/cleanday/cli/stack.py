"""Running cleanday: `version`, `up`, `serve`, `worker`, `migrate`, `demo` and `smoke`."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from cleanday.cli.common import current_settings, database_shown, ensure_data_dir, friendly

app = typer.Typer()


@app.command()
def version() -> None:
    """Print cleanday's version."""
    from cleanday import __version__

    typer.echo(__version__)


@app.command()
@friendly
def up() -> None:
    """Start the embedded stack: Temporal dev server, ledger service, local model provider
    and a worker, with the built-in behaviors. Ctrl-C stops it; run again to resume.
    Ports: TEMPORAL_ADDRESS, TEMPORAL_UI_PORT, CLEANDAY_PORT, CLEANDAY_LOCAL_PROVIDER_PORT."""
    from cleanday.runtime.embedded import up as run_up

    raise typer.Exit(run_up(current_settings(), out=typer.echo))


@app.command()
@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="default CLEANDAY_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default CLEANDAY_PORT")] = None,
    scheduler: Annotated[
        bool | None, typer.Option("--scheduler/--no-scheduler", help="default CLEANDAY_SCHEDULER")
    ] = None,
) -> None:
    """Run the ledger service (HTTP API and Pane of Glass) with uvicorn."""
    import uvicorn

    from cleanday.runtime.starter import attach_runtime
    from cleanday.service.app import build_service, create_app

    settings = current_settings()
    ensure_data_dir(settings)
    api = create_app(settings, build_service(settings), scheduler=scheduler)
    attach_runtime(api, settings)
    uvicorn.run(
        api,
        host=host or settings.service_host,
        port=port or settings.service_port,
        log_level="info",
    )


@app.command()
@friendly
def worker() -> None:
    """Run a worker: register the behaviors in CLEANDAY_BEHAVIORS_DIR, sync their schedules,
    run their runs; SIGINT/SIGTERM stop it gracefully."""
    import asyncio

    from cleanday.runtime.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run_worker(current_settings()))


@app.command()
@friendly
def migrate() -> None:
    """Upgrade the ledger database to the newest schema and print its revision (idempotent)."""
    from cleanday.db import current_revision, make_engine
    from cleanday.db import migrate as upgrade

    settings = current_settings()
    ensure_data_dir(settings)
    engine = make_engine(settings=settings)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    where = f"ledger database {database_shown(settings)}"
    if before == after:
        typer.echo(f"{where}: at revision {after} already; nothing to do")
    else:
        typer.echo(f"{where}: upgraded from {before or 'empty'} to revision {after}")


@app.command()
@friendly
def demo(
    weeks: Annotated[int, typer.Option(help="simulated weeks")] = 3,
) -> None:
    """Run the built-in behaviors through simulated weeks on Temporal's time-skipping test
    server: clean days, a Sunday review, a promotion, a demotion, the final ledger."""
    import asyncio

    from cleanday.runtime.demo import run_demo

    asyncio.run(run_demo(weeks=weeks, out=typer.echo))


@app.command()
def smoke() -> None:
    """Live check with real tokens: one free authenticated call to each configured provider.

    Reads OPENROUTER_API_KEY, ANTHROPIC_API_KEY, NOTION_TOKEN and SLACK_BOT_TOKEN, and the
    base URLs from the usual settings. Exits 1 if a configured provider fails or none is set.
    """
    from cleanday.smoke import run_smoke

    results = run_smoke(current_settings())
    for r in results:
        typer.echo(f"{r.provider:<11} {r.status:<8} {r.detail}")
    if all(r.status == "skipped" for r in results):
        typer.echo("error: no provider credential is set; export at least one of the above")
        raise typer.Exit(1)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)
