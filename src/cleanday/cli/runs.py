"""Runs by hand: `cleanday run NAME [--input JSON|@file] [--wait]` starts a run now, through
the same code path as `POST /api/v1/behaviors/{name}/runs` and the Pane's Run now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cleanday.cli.common import current_settings, friendly, open_ledger
from cleanday.errors import CleandayError

if TYPE_CHECKING:
    from cleanday.runtime.types import RunState

app = typer.Typer()

# outcomes that are not the behavior's success: `run --wait` exits 1 on them
_BAD = {"failed", "blocked", "infra_error"}
_HOW_TO_SIGN = {
    "batch approval": "cleanday batch approve {name} {run}  (or reject)",
    "release": "cleanday release {name} {run}",
}


def parse_input(raw: str | None) -> dict[str, Any]:
    """`--input`: a JSON object, or @path to a file holding one."""
    if not raw:
        return {}
    text, where = raw, "--input"
    if raw.startswith("@"):
        path = Path(raw[1:])
        try:
            text, where = path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise CleandayError(f"--input {raw}: cannot read {path} ({exc.strerror})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CleandayError(
            f"{where}: not JSON ({exc.msg} at character {exc.pos}); pass an object such as "
            '\'{"topic": "rivers"}\' or @file.json'
        ) from None
    if not isinstance(value, dict):
        raise CleandayError(f'{where}: the input must be a JSON object, e.g. {{"topic": "…"}}')
    return value


@app.command()
@friendly
def run(
    name: Annotated[str, typer.Argument(help="the behavior")],
    input: Annotated[
        str | None, typer.Option("--input", help="the run's input: a JSON object or @file")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="follow the run's phases to its outcome")
    ] = False,
    timeout: Annotated[float, typer.Option(help="--wait gives up after this many seconds")] = 600,
) -> None:
    """Start a run of NAME now; prints its run ID and its Temporal UI link."""
    import asyncio

    raise typer.Exit(asyncio.run(_run(name, parse_input(input), wait, timeout)))


async def _run(name: str, input: dict[str, Any], wait: bool, timeout: float) -> int:
    from cleanday.runtime.starter import LazyTemporalRunStarter, run_now

    settings = current_settings()
    starter = LazyTemporalRunStarter(settings)
    with open_ledger() as service:
        started = await run_now(starter, service, settings, name, input)
    typer.echo(f"started {started.run_id} of {name}")
    typer.echo(f"Temporal UI: {started.temporal_ui}")
    if not wait:
        return 0
    return await _follow(await starter.client(), name, started.run_id, timeout)


async def _follow(client: Any, name: str, run_id: str, timeout: float) -> int:
    """Print each phase as the run reaches it; end with its outcome, or with what it waits for."""
    import asyncio
    import time

    from temporalio.client import WorkflowExecutionStatus
    from workflows.behavior_run import BehaviorRun

    handle = client.get_workflow_handle(run_id, result_type=_state_type())
    give_up, seen = time.monotonic() + timeout, ""
    while time.monotonic() < give_up:
        desc = await handle.describe()
        if desc.status is not WorkflowExecutionStatus.RUNNING:
            if desc.status is WorkflowExecutionStatus.COMPLETED:
                return _ended(await handle.result())
            typer.echo(f"run {run_id} ended {desc.status.name}: see the Temporal UI", err=True)
            return 1
        try:
            state = await handle.query(
                BehaviorRun.state, result_type=_state_type(), rpc_timeout=_timedelta(5)
            )
        except Exception:  # no worker answered yet: the run has not started its step
            state = None
        if state is not None:
            phase = state.phase + (f" ({state.waiting_for})" if state.waiting_for else "")
            if phase != seen:
                typer.echo(f"  {phase}")
                seen = phase
            if state.phase == "waiting" and state.waiting_for:
                _gates(state)
                how = _HOW_TO_SIGN.get(state.waiting_for, "").format(name=name, run=run_id)
                typer.echo(f"{state.outcome}: waits for {state.waiting_for}; {how}")
                return 0
        await asyncio.sleep(0.5)
    typer.echo(f"run {run_id} still running after {timeout:g} s; see the Temporal UI", err=True)
    return 1


def _ended(state: RunState) -> int:
    _gates(state)
    acted = "acted" if state.acted else (f"not acted: {state.denied}" if state.denied else "")
    summary = f": {state.summary}" if state.summary else ""
    typer.echo(f"{state.outcome}{summary}" + (f" ({acted})" if acted else ""))
    return 1 if state.outcome in _BAD else 0


def _gates(state: RunState) -> None:
    for g in state.gates:
        typer.echo(f"  gate {g.name}: {'passed' if g.passed else 'FAILED ' + g.reason}")
    for a in state.anomalies:
        typer.echo(f"  anomaly {a.name}: {a.detail}")


def _state_type() -> type[RunState]:
    from cleanday.runtime.types import RunState

    return RunState


def _timedelta(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)
