"""`cleanday keys` and `cleanday preset history|restore`: the router's part of the command line."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import Engine

from cleanday.budget import SpendStore
from cleanday.config import Settings, get_settings
from cleanday.db import make_engine
from cleanday.errors import CleandayError
from cleanday.presets import PresetStore

preset_app = typer.Typer(no_args_is_help=True, help="Preset versions: history and restore.")


def _engine(settings: Settings) -> Engine:
    return make_engine(settings.resolved_database_url)


def _fail(exc: CleandayError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def _usd(amount: float) -> str:
    return f"${amount:,.2f}"


def keys() -> None:
    """Spend, cap, share used and projected end-of-period spend for every key."""
    settings = get_settings()
    rows = SpendStore(_engine(settings), timezone=settings.timezone).report(datetime.now(UTC))
    if not rows:
        typer.echo("no keys bound; register a Work Order first")
        return
    zone = ZoneInfo(settings.timezone)
    typer.echo(
        f"{'behavior':<24} {'key':<28} {'period':<18} {'spend':>9} {'cap':>9} {'used':>6} "
        f"{'projected':>10}"
    )
    for r in rows:
        period = f"{r.cadence} to {r.period_end.astimezone(zone):%m-%d}"
        flag = "  over cap at this pace" if r.projected_usd > r.cap_usd else ""
        typer.echo(
            f"{r.behavior:<24} {r.key_ref:<28} {period:<18} {_usd(r.spend_usd):>9} "
            f"{_usd(r.cap_usd):>9} {r.share_used:>6.0%} {_usd(r.projected_usd):>10}{flag}"
        )


@preset_app.command("history")
def preset_history(name: str) -> None:
    """Every version of a behavior's preset, oldest first, with where each was published."""
    store = PresetStore(_engine(get_settings()))
    try:
        versions = store.history(name)
        publications = store.publications(name)
    except CleandayError as exc:
        raise _fail(exc) from None
    if not versions:
        raise _fail(CleandayError(f"behavior {name!r} has no preset versions; register it first"))
    for v in versions:
        tiers = sorted({p.tier for p in publications if p.version == v.version})
        where = f"  published for {', '.join(tiers)}" if tiers else ""
        typer.echo(
            f"v{v.version}  {v.created_at:%Y-%m-%d %H:%M}  {v.content_hash[:12]}  "
            f"{v.spec.model}  {v.source}{where}"
        )


@preset_app.command("restore")
def preset_restore(name: str, version: int) -> None:
    """Make a new version equal to VERSION (history is kept)."""
    from cleanday.router.core import Router

    settings = get_settings()
    router = Router.from_settings(settings, _engine(settings))
    try:
        restored = asyncio.run(router.restore_preset(name, version))
    except CleandayError as exc:
        raise _fail(exc) from None
    finally:
        router.engine.dispose()
    typer.echo(f"{name}: v{restored.version} restored from v{version}")


def register_commands(app: typer.Typer) -> None:
    """Add `keys` and `preset ...` to the main `cleanday` command."""
    app.command("keys")(keys)
    app.add_typer(preset_app, name="preset")
