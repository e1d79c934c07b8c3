"""The router's verbs: `cleanday keys` (spend against each key's cap) and `cleanday preset
history|restore` (preset versions)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import typer

from cleanday.cli.common import current_settings, friendly
from cleanday.errors import CleandayError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cleanday.config import Settings

app = typer.Typer()
preset = typer.Typer(no_args_is_help=True, help="Preset versions: history and restore.")


def _engine(settings: Settings) -> Engine:
    from cleanday.db import make_engine

    return make_engine(settings.resolved_database_url)


def _usd(amount: float) -> str:
    return f"${amount:,.2f}"


@app.command("keys")
@friendly
def keys() -> None:
    """Spend, cap, share used and projected end-of-period spend for every key."""
    from cleanday.budget import SpendStore

    settings = current_settings()
    engine = _engine(settings)
    try:
        rows = SpendStore(engine, timezone=settings.timezone).report(datetime.now(UTC))
    finally:
        engine.dispose()
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


@preset.command("history")
@friendly
def history(name: str) -> None:
    """Every version of a behavior's preset, oldest first, with each publication of it: the
    tier, the cause (registration, promotion, demotion) and the date."""
    from cleanday.presets import PresetStore

    engine = _engine(current_settings())
    try:
        store = PresetStore(engine)
        versions = store.history(name)
        publications = store.publications(name)
    finally:
        engine.dispose()
    if not versions:
        raise CleandayError(f"behavior {name!r} has no preset versions; register it first")
    for v in versions:
        pubs = [
            f"{p.tier} ({p.reason}, {p.at:%Y-%m-%d})"
            for p in publications
            if p.version == v.version
        ]
        where = f"  published for {'; '.join(pubs)}" if pubs else ""
        typer.echo(
            f"v{v.version}  {v.created_at:%Y-%m-%d %H:%M}  {v.content_hash[:12]}  "
            f"{v.spec.model}  {v.source}{where}"
        )


@preset.command("restore")
@friendly
def restore(name: str, version: int) -> None:
    """Make a new version equal to VERSION (history is kept), published for the tier."""
    from cleanday.cli.common import open_ledger

    with open_ledger() as ledger:
        restored = ledger.restore_preset(name, version, by="cli")
    typer.echo(f"{name}: v{restored} restored from v{version}")
