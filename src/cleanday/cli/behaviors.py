"""A behavior's own verbs: `register` (and `--revive`), `show`, `override`, `pause`, `resume`,
`retire`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cleanday.cli import render
from cleanday.cli.common import friendly, open_ledger, read_ledger
from cleanday.domain import OVERRIDE_KINDS, Tier
from cleanday.errors import CleandayError

app = typer.Typer()


@app.command()
@friendly
def register(
    path: Annotated[Path, typer.Argument(help="a Work Order file, or a directory of them")],
    revive: Annotated[
        bool,
        typer.Option("--revive", help="bring a retired behavior back at tier A with a fresh clock"),
    ] = False,
) -> None:
    """Register Work Orders (new behavior, new version, or unchanged); with --revive, bring
    retired behaviors back at tier A with a fresh clock."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"})
        if not files:
            raise typer.BadParameter(f"{path} holds no .yaml Work Orders", param_hint="PATH")
    elif path.is_file():
        files = [path]
    else:
        raise typer.BadParameter(f"{path} does not exist", param_hint="PATH")
    failed = 0
    with open_ledger() as service:
        for file in files:
            if path.is_dir() and (why := _skip_reason(file)) is not None:
                typer.echo(f"{file}: skipped, {why}")
                continue
            try:
                result = service.register(file, revive=revive)
            except CleandayError as exc:
                # one bad file does not stop the others; the exit code still says it failed
                typer.echo(f"error: {exc}", err=True)
                failed += 1
                continue
            typer.echo(result.message)
    if failed:
        raise typer.Exit(1)


def _skip_reason(file: Path) -> str | None:
    """Why a YAML file of a registered directory is not a Work Order (a behavior's data)."""
    from cleanday.registration import not_a_work_order

    try:
        return not_a_work_order(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None  # registering it says what is wrong


@app.command()
@friendly
def show(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """A behavior's state and its ledger history."""
    from cleanday.service.schemas import state_out

    with read_ledger() as service:
        state = state_out(service.state(name)).model_dump(mode="json")
        entries = [e.model_dump(mode="json") for e in service.history(name)]
    typer.echo(render.show(name, state, entries, as_json))


@app.command()
@friendly
def override(
    name: str,
    reason: Annotated[str, typer.Option(help="why the operator changed the outcome")],
    kind: Annotated[str, typer.Option(help="manual|rejected|edited|rerun|let_through")] = "manual",
    tier: Annotated[Tier | None, typer.Option(help="force a tier (A, B, C, Wings)")] = None,
) -> None:
    """Record an operator override (resets the clean-day clock)."""
    from cleanday.service.serialize import to_jsonable

    if kind not in OVERRIDE_KINDS or (kind == "forced_tier" and tier is None):
        choices = ", ".join(k for k in OVERRIDE_KINDS if k != "forced_tier")
        raise typer.BadParameter(
            f"unknown override kind {kind!r}; use one of {choices}, or --tier to force a tier",
            param_hint="--kind",
        )
    if tier is not None:
        kind = "forced_tier"
    with open_ledger() as service:
        service.override(name, reason, kind=kind, tier=tier)
        state = to_jsonable(service.state(name))
    typer.echo(f"{name}: override recorded; tier {state['tier']}, clock at {state['clean_days']}")


def _status_command(verb: str) -> Callable[[str], None]:
    @friendly
    def command(name: Annotated[str, typer.Argument(help="the behavior")]) -> None:
        from cleanday.service.serialize import to_jsonable

        with open_ledger() as service:
            getattr(service, verb)(name)
            state = to_jsonable(service.state(name))
        typer.echo(f"{name}: {state['status']}")

    command.__doc__ = {
        "pause": "Pause a behavior (its schedule stops; no permits).",
        "resume": "Resume a paused or quarantined behavior.",
    }[verb]
    return command


for _verb in ("pause", "resume"):
    app.command(_verb)(_status_command(_verb))


@app.command()
@friendly
def retire(
    name: Annotated[str, typer.Argument(help="the behavior")],
    reason: Annotated[str, typer.Option(help="why, for the ledger")] = "",
) -> None:
    """Retire a behavior: no more runs, reports or permits, and its model key is released for
    another behavior. `register --revive PATH` brings it back at tier A."""
    with open_ledger() as service:
        service.retire(name, reason=reason)
        released = [e for e in service.history(name) if e.kind.value == "key_released"]
    key = released[-1].data.get("key_ref") if released else None
    typer.echo(
        f"{name}: retired"
        + (f"; its key {key} is released for reuse" if key else "")
        + "; `cleanday register --revive PATH` brings it back at tier A"
    )
