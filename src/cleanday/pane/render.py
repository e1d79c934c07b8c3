"""The Pane's Jinja2 environment: the templates shipped in this package, autoescaped, and the
filters they format with (times in the ledger's time zone, money, links to the Temporal UI)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

STATIC_PATH = "/static/pane"
# what a step's payload shows first; the rest follows in the step's own order
_FIRST_KEYS = ("summary", "title", "actions")


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("cleanday.pane", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,  # a misspelt name fails the page's test, not silently
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        local=local,
        ago=ago,
        day=day,
        usd=usd,
        qs=qs,
        trigger=trigger,
        temporal_url=temporal_url,
        payload_keys=payload_keys,
    )
    env.globals["static"] = lambda name: f"{STATIC_PATH}/{name}"
    return env


@pass_context
def local(ctx: Context, dt: datetime) -> str:
    """`dt` in the ledger's time zone, to the minute."""
    return dt.astimezone(ZoneInfo(ctx["tz"])).strftime("%Y-%m-%d %H:%M")


@pass_context
def ago(ctx: Context, dt: datetime) -> str:
    """How long ago (or how soon) `dt` is from the page's "now": "3 h ago", "in 12 min"."""
    seconds = (dt - ctx["now"]).total_seconds()
    n = abs(seconds)
    if n < 60:
        text = "now" if n < 5 else f"{int(n)} s"
    elif n < 3600:
        text = f"{int(n // 60)} min"
    elif n < 86400 * 2:
        text = f"{n / 3600:.0f} h"
    else:
        text = f"{n / 86400:.0f} d"
    if text == "now":
        return text
    return f"in {text}" if seconds > 0 else f"{text} ago"


def day(d: date) -> str:
    return f"{d:%a} {d.day} {d:%b %Y}"


def usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def qs(params: Mapping[str, Any]) -> str:
    return urlencode(params, doseq=True)


def trigger(t: Mapping[str, Any]) -> str:
    kind = t.get("type")
    if kind == "cron":
        return f"cron {t.get('cron')} ({t.get('timezone', 'UTC')})"
    if kind == "interval":
        every = int(t.get("every_seconds", 0))
        if every % 3600 == 0:
            return f"every {every // 3600} h"
        return f"every {every // 60} min" if every % 60 == 0 else f"every {every} s"
    return "on signed webhook" if kind == "webhook" else ""


@pass_context
def temporal_url(ctx: Context, workflow_id: str) -> str:
    """The run in the Temporal UI (its workflow: the run ID the ledger counts once)."""
    return (
        f"{ctx['temporal_ui']}/namespaces/{quote(ctx['namespace'])}/workflows/{quote(workflow_id)}"
    )


def payload_keys(value: Mapping[str, Any]) -> list[str]:
    keys = list(value)
    return [k for k in _FIRST_KEYS if k in value] + [k for k in keys if k not in _FIRST_KEYS]
