"""What the read verbs print, from the JSON the ledger API answers.

Both ways a read verb gets its rows end here: read from the database in-process (the verb's
typer command) or asked of the running ledger service (`cleanday.cli.quick`). Each takes the
API's JSON shapes (dicts of strings, numbers and lists) and returns the text to print, so the
two ways print the same. Standard library only: the quick way must not import the stack.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

Row = dict[str, Any]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text columns, each as wide as its widest cell, two spaces apart."""
    widths = [max(len(cell) for cell in col) for col in zip(header, *rows, strict=True)]
    lines = (
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in (header, *rows)
    )
    return "\n".join(lines)


def pane_row(row: Row) -> Row:
    """One Pane of Glass row with exactly the fields `cleanday ledger --json` promises."""
    return {
        "name": row["name"],
        "tier": row["tier"],
        "status": row["status"],
        "clean_days": row["clean_days"],
        "candidate": bool(row.get("candidate", False)),
        "last_gate_failure": row.get("last_gate_failure"),
        "last_failure_reason": row.get("last_failure_reason"),
    }


def pane_table(rows: list[Row]) -> str:
    """The Pane of Glass as a plain-text table."""
    if not rows:
        return "No behaviors registered yet: run `cleanday register behaviors/`."
    header = (
        "BEHAVIOR",
        "TIER",
        "STATUS",
        "CLEAN DAYS",
        "CANDIDATE",
        "LAST GATE FAILURE",
        "REASON",
    )
    return table(
        header,
        [
            (
                str(r["name"]),
                str(r["tier"]),
                str(r["status"]),
                str(r["clean_days"]),
                "yes" if r["candidate"] else "",
                str(r["last_gate_failure"] or "-"),
                str(r["last_failure_reason"] or ""),
            )
            for r in rows
        ],
    )


def ledger(behaviors: list[Row], as_json: bool) -> str:
    """`cleanday ledger`, from the API's behavior rows."""
    rows = [pane_row(r) for r in behaviors]
    return json.dumps(rows, indent=2) if as_json else pane_table(rows)


# the entry data `show` prints: what happened, and for a sign-off or permit, to what and by whom
_ENTRY_DATA = {
    "run_id", "outcome", "reason", "gate", "decision", "week", "from", "to", "tier",
    "item_id", "items", "by", "door", "key_ref", "decided_at", "superseded_by",
}  # fmt: skip


def show(name: str, state: Row, history: list[Row], as_json: bool) -> str:
    """`cleanday show NAME`, from the API's state and history of the behavior."""
    if as_json:
        return json.dumps({"state": state, "history": history}, indent=2)
    lines = [
        f"{name}: tier {state['tier']}, {state['status']}, {state['clean_days']} clean days"
        + (", candidate" if state.get("candidate") else "")
    ]
    for e in history:
        data = e.get("data") or {}
        detail = ", ".join(f"{k}={v}" for k, v in data.items() if k in _ENTRY_DATA)
        lines.append(f"  {e.get('at')}  {e.get('kind'):<13} {detail}".rstrip())
    return "\n".join(lines)


def review(week: str, candidates: list[Row], decisions: list[Row], as_json: bool) -> str:
    """`cleanday review` (without --decide), from the API's review of `week`."""
    rows = [pane_row(r) for r in candidates]
    if as_json:
        return json.dumps({"week": week, "candidates": rows, "decisions": decisions}, indent=2)
    head = f"Review of {week}: {len(rows)} candidate(s)"
    return f"{head}\n{pane_table(rows)}" if rows else head


# how much of an action's content `batch list` shows (`--json` shows it whole)
_SHOWN = 400


def items(name: str, rows: list[Row], every: bool, as_json: bool) -> str:
    """`cleanday batch list NAME`, from the API's items of the behavior."""
    if as_json:
        return json.dumps(rows, indent=2)
    if not rows:
        return f"{name}: nothing awaits sign-off" if not every else f"{name}: no items"
    header = ("ITEM", "KIND", "STATUS", "CREATED", "EXPIRES")
    lines = [
        (r["item_id"], r["kind"], r["status"], _seconds(r["created_at"]), _seconds(r["expires_at"]))
        for r in rows
    ]
    texts = [_item_text(r["item_id"], r["payload"]) for r in rows]
    return "\n\n".join([table(header, lines), *texts])


def _seconds(at: str | None) -> str:
    return datetime.fromisoformat(at).isoformat(timespec="seconds") if at else "-"


def _item_text(item_id: str, payload: Row) -> str:
    """One item readably: its summary, then each action and its content."""
    lines = [f"{item_id}: {payload.get('summary') or '(no summary)'}"]
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        lines.append("  no actions")
        return "\n".join(lines)
    for i, action in enumerate(actions, 1):
        if not isinstance(action, dict):
            continue
        lines.append(f"  {i}. {action.get('kind')} -> {action.get('target')}")
        content = action.get("payload")
        for key, value in content.items() if isinstance(content, dict) else []:
            text = value if isinstance(value, str) else repr(value)
            cut = text if len(text) <= _SHOWN else text[:_SHOWN] + f"… ({len(text)} chars)"
            lines.append(f"     {key}: " + cut.replace("\n", "\n       "))
    return "\n".join(lines)
