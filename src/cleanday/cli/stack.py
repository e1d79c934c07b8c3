"""Running cleanday: `version`, `up`, `serve`, `worker`, `migrate`, `demo` and `smoke`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cleanday.cli.common import current_settings, database_shown, ensure_data_dir, friendly

app = typer.Typer()

JsonLogs = Annotated[
    bool | None,
    typer.Option("--json-logs/--text-logs", help="log format; default CLEANDAY_LOG_FORMAT"),
]


@app.command()
def version() -> None:
    """Print cleanday's version."""
    from cleanday import __version__

    typer.echo(__version__)


@app.command()
@friendly
def up(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="run in the background; `cleanday down` stops it")
    ] = False,
) -> None:
    """Start the embedded stack: Temporal dev server, ledger service, local model provider
    and a worker, with the built-in behaviors. Ctrl-C (or SIGTERM, or closing the terminal)
    stops it; run again to resume.
    Ports: TEMPORAL_ADDRESS, TEMPORAL_UI_PORT, CLEANDAY_PORT, CLEANDAY_LOCAL_PROVIDER_PORT."""
    if detach:
        from cleanday.cli.stackops import up_detached

        raise typer.Exit(up_detached(current_settings()))
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
    json_logs: JsonLogs = None,
) -> None:
    """Run the ledger service (HTTP API, Pane of Glass, /metrics, /healthz, /readyz) with
    uvicorn."""
    import uvicorn

    from cleanday.logs import configure
    from cleanday.runtime.starter import attach_runtime
    from cleanday.service.app import build_service, create_app

    settings = current_settings()
    configure(settings, json_logs=json_logs)
    ensure_data_dir(settings)
    api = create_app(settings, build_service(settings), scheduler=scheduler)
    attach_runtime(api, settings)
    uvicorn.run(
        api,
        host=host or settings.service_host,
        port=port or settings.service_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's lines go through cleanday's handler (JSON, redacted)
    )


@app.command()
@friendly
def worker(json_logs: JsonLogs = None) -> None:
    """Run a worker: register the behaviors in CLEANDAY_BEHAVIORS_DIR, sync their schedules,
    run their runs; SIGINT/SIGTERM stop it gracefully, SIGHUP reloads it (in-flight activities
    finish, then it re-executes itself with the new step code). Its Temporal SDK metrics are
    served for Prometheus on CLEANDAY_WORKER_METRICS_PORT when set."""
    import asyncio

    from cleanday.logs import configure
    from cleanday.runtime.reload import mark_ready, pid_file, reexec
    from cleanday.runtime.worker import run_worker

    settings = current_settings()
    configure(settings, json_logs=json_logs)

    async def work(path: Path) -> bool:
        ready = asyncio.Event()
        running = asyncio.create_task(run_worker(settings, ready=ready))
        polling = asyncio.create_task(ready.wait())
        await asyncio.wait({running, polling}, return_when=asyncio.FIRST_COMPLETED)
        if polling.done():
            mark_ready(path)  # `cleanday up` waits for this
        else:
            polling.cancel()
        return await running

    with pid_file(settings) as path:
        reloading = asyncio.run(work(path))
    if reloading:
        reexec()


@app.command()
@friendly
def reload() -> None:
    """Reload the workers of this data directory (the embedded stack's included): each finishes
    its in-flight activities, then restarts with the step code on disk now."""
    from cleanday.runtime.reload import reload_workers

    told = reload_workers(current_settings())
    if not told:
        typer.echo("no running worker found for this data directory (CLEANDAY_DATA_DIR)", err=True)
        raise typer.Exit(1)
    typer.echo(f"reloading {len(told)} worker(s): {', '.join(map(str, told))}")


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
def smoke(
    provider: Annotated[
        str | None,
        typer.Argument(help="slack: post a test message and delete it; notion: a scratch row"),
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option("--parent", help="notion: the page to create the scratch data source under"),
    ] = None,
) -> None:
    """Live check with real tokens: one free authenticated call to each configured provider.

    Reads OPENROUTER_API_KEY, ANTHROPIC_API_KEY, NOTION_TOKEN and SLACK_BOT_TOKEN, and the
    base URLs from the usual settings. Exits 1 if a configured provider fails or none is set.
    `cleanday smoke slack` posts a test message to CLEANDAY_SLACK_CHANNEL and deletes it.
    `cleanday smoke notion --parent PAGE_ID` creates a scratch data source under the page,
    writes a row, reads it back and moves both to the trash (NOTION_BASE_URL, NOTION_TOKEN).
    """
    from cleanday.smoke import run_smoke

    if provider == "slack":
        from cleanday.smoke_slack import run_slack_smoke

        results = run_slack_smoke(current_settings())
    elif provider == "notion":
        if not parent:
            typer.echo(
                "error: `cleanday smoke notion` needs --parent PAGE_ID: a page shared with the "
                "integration (••• > Connections), under which a scratch data source is made"
            )
            raise typer.Exit(2)
        from cleanday.smoke_notion import run_notion_smoke

        results = run_notion_smoke(current_settings(), parent)
    elif provider is not None:
        typer.echo(
            f"error: no deep smoke check for {provider!r}; try `cleanday smoke slack` or "
            "`cleanday smoke notion --parent PAGE_ID`"
        )
        raise typer.Exit(2)
    else:
        results = run_smoke(current_settings())
    for r in results:
        typer.echo(f"{r.provider:<15} {r.status:<8} {r.detail}")
    if all(r.status == "skipped" for r in results):
        typer.echo("error: no provider credential is set; export at least one of the above")
        raise typer.Exit(1)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)
