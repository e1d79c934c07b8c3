"""Operating the embedded stack from another terminal: `up --detach`, `down`, `logs`; the
doctor, `status`, is in `cleanday.cli.doctor`."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from cleanday.cli.common import current_settings, friendly
from cleanday.errors import CleandayError

if TYPE_CHECKING:
    from cleanday.config import Settings

app = typer.Typer()

READY_LINE = "Pane of Glass:"
DETACH_TIMEOUT_S = 180.0


def up_detached(settings: Settings) -> int:
    """Start `cleanday up` in its own session, its output in logs/up.log; return once it is
    ready (printing where to look) or has failed (printing why)."""
    from cleanday.runtime import stackfiles

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    leftovers = stackfiles.running(settings.data_dir)
    if leftovers:
        raise CleandayError(stackfiles.leftover_message(settings.data_dir, leftovers))
    logs = stackfiles.logs_dir(settings.data_dir)
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / "up.log"
    start = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cleanday.cli", "up"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this terminal
        )
    deadline = time.monotonic() + DETACH_TIMEOUT_S
    while True:
        with open(log, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        if READY_LINE in text:
            typer.echo(
                text[text.index(READY_LINE) :]
                .rstrip()
                .replace("Ctrl-C stops", "Ctrl-C in its terminal stops")
            )
            typer.echo(f"running in the background (pid {proc.pid}); `cleanday down` stops it, "
                       "`cleanday logs -f` follows it")  # fmt: skip
            return 0
        if proc.poll() is not None:
            typer.echo(text.rstrip(), err=True)
            typer.echo(
                f"error: the stack did not start (exit {proc.returncode}); see {log}", err=True
            )
            return 1
        if time.monotonic() > deadline:
            typer.echo(f"error: the stack is not ready after {DETACH_TIMEOUT_S:.0f} s; see {log} "
                       "and `cleanday down` to stop what started", err=True)  # fmt: skip
            return 1
        time.sleep(0.3)


@app.command()
@friendly
def down() -> None:
    """Stop the embedded stack started from this data directory (in the background, or in
    another terminal), parts in reverse order."""
    from cleanday.runtime import stackfiles

    settings = current_settings()
    stopped = stackfiles.stop(settings.data_dir)
    if not stopped:
        typer.echo(f"no cleanday stack is running from {settings.data_dir}")
        return
    typer.echo(f"stopped {stackfiles.describe(stopped)}")


@app.command()
@friendly
def logs(
    part: Annotated[
        str | None, typer.Argument(help="service, worker, temporal or provider; default all")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="lines of each log first")] = 40,
) -> None:
    """The embedded stack's logs (in the data directory's logs/), with -f followed."""
    from cleanday.runtime import stackfiles

    settings = current_settings()
    names = stackfiles.LOG_NAMES
    if part is not None and part not in names:
        raise typer.BadParameter(
            f"{part!r} is not a part of the stack; use one of {', '.join(names)}",
            param_hint="PART",
        )
    directory = stackfiles.logs_dir(settings.data_dir)
    chosen = [names[part]] if part else list(names.values())
    paths = [directory / f"{name}.log" for name in chosen]
    if not any(p.exists() for p in paths) and not follow:
        raise CleandayError(f"no logs in {directory} yet; `cleanday up` writes them there")
    try:
        for line in stackfiles.follow(paths, lines, follow):
            typer.echo(line)
    except KeyboardInterrupt:
        pass
