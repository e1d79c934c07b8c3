"""A behavior's own verbs: `register`, `show`, `override`, `pause`, `resume`, `retire`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cleanday.cli.common import friendly, open_ledger
from cleanday.domain import Tier
from cleanday.errors import CleandayError

app = typer.Typer()


@app.command()
@friendly
def register(
    path: Annotated[Path, typer.Argument(help="a Work Order file, or a directory of them")],
) -> None:
    """Register Work Orders (new behavior, new version, or unchanged)."""
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
            try:
                result = service.register(file)
            except CleandayError as exc:
                # one bad file does not stop the others; the exit code still says it failed
                typer.echo(f"error: {exc}", err=True)
                failed += 1
                continue
            typer.echo(result.message)
    if failed:
        raise typer.Exit(1)


@app.command()
@friendly
def show(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """A behavior's state and its ledger history."""
    from cleanday.service.serialize import to_jsonable

    with open_ledger() as service:
        state = to_jsonable(service.state(name))
        entries = to_jsonable(service.history(name))
    if as_json:
        typer.echo(json.dumps({"state": state, "history": entries}, indent=2))
        return
    typer.echo(
        f"{name}: tier {state['tier']}, {state['status']}, {state['clean_days']} clean days"
        + (", candidate" if state.get("candidate") else "")
    )
    for e in entries:
        data = e.get("data") or {}
        detail = ", ".join(
            f"{k}={v}" for k, v in data.items() if k in {"run_id", "outcome", "reason", "gate",
                                                          "decision", "week", "from", "to", "tier"}
        )  # fmt: skip
        typer.echo(f"  {e.get('at')}  {e.get('kind'):<13} {detail}".rstrip())


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
        "retire": "Retire a behavior for good.",
    }[verb]
    return command


for _verb in ("pause", "resume", "retire"):
    app.command(_verb)(_status_command(_verb))
