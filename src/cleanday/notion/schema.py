"""The three data sources cleanday writes to: their titles, their properties and types, the ID
property each row is keyed by, and the check that an adopted data source has them all."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TIERS = ("C", "B", "A", "Wings")
STATUSES = ("active", "paused", "quarantined", "retired")
DECISIONS = ("Promote", "Hold")


def _select(*names: str) -> dict[str, Any]:
    return {"select": {"options": [{"name": n} for n in names]}}


_TITLE: dict[str, Any] = {"title": {}}
_TEXT: dict[str, Any] = {"rich_text": {}}
_DATE: dict[str, Any] = {"date": {}}
_URL: dict[str, Any] = {"url": {}}
_COUNT: dict[str, Any] = {"number": {"format": "number"}}
_DOLLARS: dict[str, Any] = {"number": {"format": "dollar"}}


@dataclass(frozen=True, slots=True)
class DataSourceSpec:
    """One data source: `role` names it in the ledger database, `key` is its ID property (a
    rich_text that holds the row's key), `properties` what `POST /v1/databases` creates."""

    role: str
    title: str
    key: str
    properties: Mapping[str, Mapping[str, Any]]

    def types(self) -> dict[str, str]:
        return {name: next(iter(schema)) for name, schema in self.properties.items()}

    def problems(self, found: Mapping[str, Any]) -> list[str]:
        """What an existing data source (its `properties` as Notion answers them) lacks: each
        missing or wrong-typed property, by name."""
        out = []
        for name, wanted in self.types().items():
            prop = found.get(name)
            if prop is None:
                out.append(f"property {name!r} is missing (add it as {wanted})")
            elif prop.get("type") != wanted:
                out.append(f"property {name!r} is {prop.get('type')}, expected {wanted}")
        return out


LEDGER = DataSourceSpec(
    "ledger",
    "Promotion Ledger",
    "Behavior ID",
    {
        "Name": _TITLE,
        "Behavior ID": _TEXT,
        "Tier": _select(*TIERS),
        "Status": _select(*STATUSES),
        "Clean days": _COUNT,
        "Last gate failure": _DATE,
        "Last failure reason": _TEXT,
        "Preset version": _COUNT,
        "Spend this period": _DOLLARS,
        "Cap": _DOLLARS,
        "Updated": _DATE,
    },
)

GATE_FAILURES = DataSourceSpec(
    "gate_failures",
    "Gate Failures",
    "Failure ID",
    {
        "Name": _TITLE,
        "Failure ID": _TEXT,
        "Behavior": _TEXT,
        "Date": _DATE,
        "Gate": _TEXT,
        "Reason": _TEXT,
        "Tier change": _TEXT,
        "Run": _URL,
    },
)

REVIEWS = DataSourceSpec(
    "reviews",
    "Promotion Reviews",
    "Review ID",
    {
        "Name": _TITLE,
        "Review ID": _TEXT,
        "Week": _DATE,
        "Behavior": _TEXT,
        "From tier": _select(*TIERS),
        "To tier": _select(*TIERS),
        "Clean days": _COUNT,
        "Runs": _COUNT,
        "Spend": _DOLLARS,
        "Anomalies": _COUNT,
        "Overrides": _COUNT,
        "Decision": _select(*DECISIONS),
        "Decided by": _TEXT,
    },
)

SPECS: tuple[DataSourceSpec, ...] = (LEDGER, GATE_FAILURES, REVIEWS)
BY_ROLE: Mapping[str, DataSourceSpec] = {s.role: s for s in SPECS}
