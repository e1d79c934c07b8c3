"""The `cleanday` command line: the service, registration, the ledger and the Sunday review."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from cleanday.config import Settings
from cleanday.domain import Decision, Tier
from cleanday.errors import CleandayError
from cleanday.service.serialize import pane_row, to_jsonable

if TYPE_CHECKING:  # imported lazily at run time: `cleanday version` needs no database stack
    from cleanday.ledger import LedgerService

app = typer.Typer(no_args_is_help=True, help="cleanday: trust for autonomous AI behaviors.")
ledger_app = typer.Typer(help="The Pane of Glass and the ledger's maintenance commands.")
review_app = typer.Typer(help="The Sunday review: candidates, decisions, close.")
app.add_typer(ledger_app, name="ledger")
app.add_typer(review_app, name="review")

P = ParamSpec("P")
R = TypeVar("R")


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a CleandayError into one line on stderr and exit 1: the message says what to fix."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CleandayError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except OperationalError as exc:
            url = _settings().resolved_database_url
            shown = make_url(url).render_as_string(hide_password=True)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            typer.echo(
                f"error: cannot use the ledger database {shown}: {reason}; check DATABASE_URL "
                "(or CLEANDAY_DATA_DIR) and that the database is up",
                err=True,
            )
            raise typer.Exit(1) from None

    return wrapper


def _settings() -> Settings:
    # read fresh each time (not get_settings' cache) so the environment of this run decides
    return Settings()


@contextmanager
def _service() -> Iterator[LedgerService]:
    """The ledger of this run's settings, its connections closed afterwards."""
    from cleanday.service.app import build_service

    settings = _settings()
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    service = build_service(settings)
    try:
        yield service
    finally:
        service.engine.dispose()


def _today(settings: Settings) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(settings.timezone)).date()


def _this_sunday(settings: Settings) -> date:
    from cleanday.clock import review_sunday

    return review_sunday(_today(settings))


def _parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date; write YYYY-MM-DD", param_hint=option
        ) from None


def _parse_sunday(value: str, option: str) -> date:
    d = _parse_date(value, option)
    if d.weekday() != 6:
        raise typer.BadParameter(
            f"{value} is a {d.strftime('%A')}; name the review week by its Sunday",
            param_hint=option,
        )
    return d


def render_table(rows: list[dict[str, Any]]) -> str:
    """The Pane of Glass as a plain-text table."""
    if not rows:
        return "No behaviors registered yet: run `cleanday register behaviors/`."
    header = [
        "BEHAVIOR",
        "TIER",
        "STATUS",
        "CLEAN DAYS",
        "CANDIDATE",
        "LAST GATE FAILURE",
        "REASON",
    ]
    lines = [
        [
            r["name"],
            r["tier"],
            r["status"],
            str(r["clean_days"]),
            "yes" if r["candidate"] else "",
            r["last_gate_failure"] or "-",
            r["last_failure_reason"] or "",
        ]
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header)] + [fmt.format(*map(str, line)) for line in lines]
    return "\n".join(s.rstrip() for s in out)


@app.command()
def version() -> None:
    """Print cleanday's version."""
    from cleanday import __version__

    typer.echo(__version__)


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

    from cleanday.service.app import build_service, create_app

    settings = _settings()
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    api = create_app(settings, build_service(settings), scheduler=scheduler)
    from cleanday.runtime.starter import attach_runtime

    attach_runtime(api, settings)
    uvicorn.run(
        api,
        host=host or settings.service_host,
        port=port or settings.service_port,
        log_level="info",
    )


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
    with _service() as service:
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


@ledger_app.callback(invoke_without_command=True)
@friendly
def ledger(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """The Pane of Glass: every behavior's tier, status, clean days and last gate failure."""
    if ctx.invoked_subcommand is not None:
        return
    with _service() as service:
        rows = [pane_row(r) for r in service.list_behaviors()]
    typer.echo(json.dumps(rows, indent=2) if as_json else render_table(rows))


@ledger_app.command("close-day")
@friendly
def ledger_close_day(
    day: Annotated[str, typer.Option("--date", help="YYYY-MM-DD; default yesterday")] = "",
) -> None:
    """Close a day in the ledger's time zone (safe to run twice)."""
    settings = _settings()
    d = _parse_date(day, "--date") if day else _today(settings) - timedelta(days=1)
    with _service() as service:
        result = service.close_day(d)
    if result.already_closed:
        typer.echo(f"day {d.isoformat()} was already closed; nothing changed")
        return
    typer.echo(
        f"day {d.isoformat()} closed: {result.behaviors} behavior(s) refreshed, "
        f"{result.entries_folded} entries folded, demoted: {', '.join(result.demoted) or 'none'}, "
        f"quarantined: {', '.join(result.quarantined) or 'none'}"
    )


@ledger_app.command("verify")
@friendly
def ledger_verify() -> None:
    """Check the hash chain; exits non-zero naming every bad entry."""
    with _service() as service:
        result = service.verify()
    if result.ok:
        typer.echo(result.summary())
        return
    typer.echo(f"error: {result.summary()}", err=True)
    raise typer.Exit(1)


@ledger_app.command("rebuild")
@friendly
def ledger_rebuild() -> None:
    """Recompute every materialized state from the entries; report differences."""
    with _service() as service:
        result = service.rebuild()
    if not result.differences:
        typer.echo(
            f"rebuilt {result.behaviors} behaviors from {result.entries} entries: no difference"
        )
        return
    typer.echo(
        f"rebuilt {result.behaviors} behaviors from {result.entries} entries; "
        f"{len(result.differences)} stored value(s) differed and were fixed:"
    )
    for d in result.differences:
        typer.echo(f"  {d.behavior}.{d.field}: stored {d.stored!r}, rebuilt {d.rebuilt!r}")


@ledger_app.command("replay")
@friendly
def ledger_replay(
    policy: Annotated[Path, typer.Option("--policy", help="a YAML policy file")],
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """What every behavior's state would be today under another policy (a backtest)."""
    from cleanday.policy import load_policy

    if not policy.is_file():
        raise typer.BadParameter(f"{policy} does not exist", param_hint="--policy")
    with _service() as service:
        rows = [pane_row(r) for r in service.replay(load_policy(policy))]
    typer.echo(json.dumps(rows, indent=2) if as_json else render_table(rows))


@app.command()
@friendly
def show(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """A behavior's state and its ledger history."""
    with _service() as service:
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
    if tier is not None:
        kind = "forced_tier"
    with _service() as service:
        service.override(name, reason, kind=kind, tier=tier)
        state = to_jsonable(service.state(name))
    typer.echo(f"{name}: override recorded; tier {state['tier']}, clock at {state['clean_days']}")


def _status_command(verb: str) -> Callable[[str], None]:
    @friendly
    def command(name: Annotated[str, typer.Argument(help="the behavior")]) -> None:
        with _service() as service:
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


@review_app.callback(invoke_without_command=True)
@friendly
def review(
    ctx: typer.Context,
    decide: Annotated[
        list[str] | None, typer.Option("--decide", help="NAME=promote|hold (repeatable)")
    ] = None,
    week: Annotated[str, typer.Option(help="the review's Sunday; default this week")] = "",
    by: Annotated[str, typer.Option(help="who decided")] = "operator",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """This week's promotion candidates; --decide records promote or hold."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings()
    sunday = _parse_sunday(week, "--week") if week else _this_sunday(settings)
    decisions: list[tuple[str, Decision]] = []
    for item in decide or []:
        name, sep, value = item.partition("=")
        if not sep or value.lower() not in {d.value for d in Decision}:
            raise typer.BadParameter(
                f"{item!r}: write NAME=promote or NAME=hold", param_hint="--decide"
            )
        decisions.append((name, Decision(value.lower())))
    with _service() as service:
        for name, decision in decisions:
            service.decide(name, sunday, decision, by)
            typer.echo(f"{name}: {decision.value} recorded for the review of {sunday.isoformat()}")
        rows = [pane_row(r) for r in service.candidates(sunday)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif not decisions:
        typer.echo(f"Review of {sunday.isoformat()}: {len(rows)} candidate(s)")
        if rows:
            typer.echo(render_table(rows))


@review_app.command("close")
@friendly
def review_close(
    week: Annotated[str, typer.Option(help="the review's Sunday, YYYY-MM-DD")],
) -> None:
    """Close a Sunday review: promote each candidate marked Promote (idempotent)."""
    sunday = _parse_sunday(week, "--week")
    with _service() as service:
        result = service.close_sunday(sunday)
    if result.already_closed:
        typer.echo(f"the review of {sunday.isoformat()} was already closed; nothing changed")
        return
    typer.echo(
        f"review {sunday.isoformat()} closed: promoted: {', '.join(result.promoted) or 'none'}; "
        f"held: {', '.join(result.held) or 'none'}"
    )


@app.command()
def smoke() -> None:
    """Live check with real tokens: one free authenticated call to each configured provider.

    Reads OPENROUTER_API_KEY, ANTHROPIC_API_KEY, NOTION_TOKEN and SLACK_BOT_TOKEN, and the
    base URLs from the usual settings. Exits 1 if a configured provider fails or none is set.
    """
    from cleanday.smoke import run_smoke

    results = run_smoke(_settings())
    for r in results:
        typer.echo(f"{r.provider:<11} {r.status:<8} {r.detail}")
    if all(r.status == "skipped" for r in results):
        typer.echo("error: no provider credential is set; export at least one of the above")
        raise typer.Exit(1)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _register_extensions() -> None:
    """Commands that live beside the parts they drive."""
    from cleanday.router.cli import register_commands as register_router_commands
    from cleanday.runtime.cli import register_commands as register_runtime_commands

    register_router_commands(app)
    register_runtime_commands(app)


_register_extensions()


def main() -> None:
    app()
