"""Storms, after Alertmanager's grouping: what the Slack sender does with a channel's alerts.

- A channel's alerts form a group. A new group waits `group_wait` (from its first alert)
  before its first message, so that a burst arrives as one message.
- While the group is open (an alert added within `close_after`), later alerts wait for the
  next `group_interval` and are then added to the group's message (`chat.update`), or, once
  the message would list more than `threshold` alerts, go out as one digest listing every one
  of them (which the group's later alerts are added to in turn). Nothing is dropped.
- A quarantine notice replaces the separate alerts of the behavior's failures in its group:
  the notice is shown, with the runs that caused it, instead of their lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cleanday.outbox import Pending
from cleanday.slack_messages import Composer

ALERTS = frozenset({"gate_failure_alert", "demotion_alert"})
GROUPED = ALERTS | {"quarantine_notice"}
_SECTION = 2900
_MAX_BLOCKS = 48


@dataclass(frozen=True, slots=True)
class Grouping:
    group_wait: timedelta = timedelta(seconds=10)
    group_interval: timedelta = timedelta(seconds=30)
    close_after: timedelta = timedelta(minutes=5)
    threshold: int = 10


@dataclass
class Group:
    """A channel's open group: its current message and the rows it lists."""

    channel_id: str
    ts: str
    rows: list[Pending]
    updated_at: datetime


def leading(rows: Sequence[Pending]) -> list[Pending]:
    """The first rows that group together (alerts and quarantine notices, in order)."""
    out: list[Pending] = []
    for r in rows:
        if r.kind not in GROUPED:
            break
        out.append(r)
    return out


def _line(c: Composer, r: Pending) -> str:
    p = r.payload
    when = c.local(p.get("at"))
    if r.kind == "gate_failure_alert":
        gates = "; ".join(f"{g['name']}: {g['reason']}" for g in p.get("gates") or [])
        return f"• *{p['behavior']}* ({p.get('tier', '?')}) {gates} · `{p.get('run_id')}` · {when}"
    if r.kind == "demotion_alert":
        why = f"{p.get('gate') or p.get('cause')}: {p.get('reason', '')}"
        return f"• *{p['behavior']}* demoted {p['from']} → {p['to']}: {why} · {when}"
    return f"• {r.kind}: {p.get('behavior', '')}"


def render(c: Composer, rows: Sequence[Pending]) -> tuple[str, list[dict[str, Any]]]:
    """One message for a group's rows: a lone alert as its own Block Kit; otherwise the
    quarantine notices first, each replacing its behavior's alerts, then a line per alert."""
    if len(rows) == 1:
        return c.compose(rows[0].kind, rows[0].payload)
    quarantined = {r.behavior for r in rows if r.kind == "quarantine_notice"}
    blocks: list[dict[str, Any]] = []
    for q in (r for r in rows if r.kind == "quarantine_notice"):
        replaced = [r for r in rows if r.kind in ALERTS and r.behavior == q.behavior]
        _, qblocks = c.compose(q.kind, q.payload)
        blocks.extend(qblocks)
        if replaced:
            runs = ", ".join(f"`{r.payload.get('run_id') or r.payload.get('key', '?')}`"
                             for r in replaced)  # fmt: skip
            blocks.append(_section(f"Replaces {len(replaced)} alert(s) of its failures: {runs}"))
    alerts = [r for r in rows if r.kind in ALERTS and r.behavior not in quarantined]
    if alerts:
        title = f"{len(alerts)} alerts" if len(alerts) > 1 else "1 alert"
        blocks.insert(0, _header(f"cleanday: {title}" + (f", {len(quarantined)} quarantined"
                                                           if quarantined else "")))  # fmt: skip
        chunk = ""
        for line in (_line(c, r) for r in alerts):
            if len(chunk) + len(line) + 1 > _SECTION:
                blocks.append(_section(chunk))
                chunk = ""
            chunk += line + "\n"
        if chunk:
            blocks.append(_section(chunk))
    if len(blocks) > _MAX_BLOCKS:  # a very large storm: the text carries every line
        blocks = [*blocks[: _MAX_BLOCKS - 1], _section("… every alert is listed in the text")]
    text = "\n".join(
        [f"cleanday: {len(alerts)} alert(s), {len(quarantined)} quarantine(s)"]
        + [_line(c, r) for r in alerts]
    )
    return text[:39_000], blocks


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000] or " "}}
