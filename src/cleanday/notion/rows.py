"""From an outbox row to the Notion row it writes: which data source, its key, its properties,
and whether a redelivery updates it (the Promotion Ledger) or leaves it as it is (a gate
failure happened once; a review row holds the operator's Decision). Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cleanday.errors import NotionSetupError
from cleanday.notion.schema import GATE_FAILURES, LEDGER, REVIEWS, DataSourceSpec

# Notion refuses rich text past 2,000 characters in one text object
_TEXT_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class NotionRow:
    spec: DataSourceSpec
    key: str  # the value of `spec.key`, the row's identity
    behavior: str | None
    properties: dict[str, Any]
    update: bool  # a redelivery (or a later change) overwrites the row


def title(text: str) -> dict[str, Any]:
    return {"title": [{"type": "text", "text": {"content": text[:_TEXT_LIMIT]}}]}


def text(value: str | None) -> dict[str, Any]:
    if not value:
        return {"rich_text": []}
    return {"rich_text": [{"type": "text", "text": {"content": value[:_TEXT_LIMIT]}}]}


def number(value: float | int | None) -> dict[str, Any]:
    return {"number": value}


def select(value: str | None) -> dict[str, Any]:
    return {"select": {"name": value} if value else None}


def day(value: str | None) -> dict[str, Any]:
    return {"date": {"start": value} if value else None}


def url(value: str | None) -> dict[str, Any]:
    return {"url": value or None}


def run_link(temporal_ui: str, namespace: str, workflow_id: str | None) -> str | None:
    """The run in the Temporal UI (its workflow, the run ID the ledger counts once)."""
    if not workflow_id:
        return None
    return f"{temporal_ui.rstrip('/')}/namespaces/{quote(namespace)}/workflows/{quote(workflow_id)}"


def ledger_row(p: dict[str, Any]) -> NotionRow:
    behavior = p["behavior"]
    reason = p.get("last_failure_reason")
    if reason and p.get("last_failure_gate"):
        reason = f"{p['last_failure_gate']}: {reason}"
    props = {
        "Name": title(behavior),
        LEDGER.key: text(behavior),
        "Tier": select(p["tier"]),
        "Status": select(p["status"]),
        "Clean days": number(p["clean_days"]),
        "Last gate failure": day(p.get("last_gate_failure")),
        "Last failure reason": text(reason),
        "Preset version": number(p.get("preset_version")),
        "Spend this period": number(p.get("spend_usd")),
        "Cap": number(p.get("cap_usd")),
        "Updated": day(p.get("updated")),
    }
    return NotionRow(LEDGER, behavior, behavior, props, update=True)


def gate_failure_row(p: dict[str, Any], temporal_ui: str, namespace: str) -> NotionRow:
    key = f"{p['behavior']}:{p['run_id']}:{p['gate']}"
    change = p.get("tier_change") or f"{p['tier']} (no change)"
    props = {
        "Name": title(f"{p['behavior']} · {p['gate']}"),
        GATE_FAILURES.key: text(key),
        "Behavior": text(p["behavior"]),
        "Date": day(p["date"]),
        "Gate": text(p["gate"]),
        "Reason": text(p.get("reason")),
        "Tier change": text(change),
        "Run": url(run_link(temporal_ui, namespace, p.get("workflow_id"))),
    }
    return NotionRow(GATE_FAILURES, key, p["behavior"], props, update=False)


def review_row(p: dict[str, Any]) -> NotionRow:
    key = f"{p['week']}:{p['behavior']}"
    evidence = p.get("evidence") or {}
    props = {
        "Name": title(f"{p['behavior']} {p['from_tier']} → {p['to_tier']}"),
        REVIEWS.key: text(key),
        "Week": day(p["week"]),
        "Behavior": text(p["behavior"]),
        "From tier": select(p["from_tier"]),
        "To tier": select(p["to_tier"]),
        "Clean days": number(p["clean_days"]),
        "Runs": number(evidence.get("runs")),
        "Spend": number(evidence.get("spend_usd")),
        "Anomalies": number(evidence.get("anomalies")),
        "Overrides": number(evidence.get("overrides")),
    }  # Decision and Decided by are the operator's: never written here
    return NotionRow(REVIEWS, key, p["behavior"], props, update=False)


def notion_row(kind: str, payload: dict[str, Any], temporal_ui: str, namespace: str) -> NotionRow:
    if kind == "ledger_row":
        return ledger_row(payload)
    if kind == "gate_failure_row":
        return gate_failure_row(payload, temporal_ui, namespace)
    if kind == "review_row":
        return review_row(payload)
    raise NotionSetupError(
        f"no Notion row for outbox messages of kind {kind!r}: this cleanday is older than the "
        "one that queued it; upgrade it (the row waits in the outbox)"
    )
