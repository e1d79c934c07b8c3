"""Turning the ledger service's results (dataclasses, pydantic models, enums) into JSON."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel


def to_jsonable(value: Any) -> Any:
    """A JSON-ready copy of `value`; dates become ISO strings, enums their values."""
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return value


def _field(row: Any, name: str, default: Any = None) -> Any:
    if isinstance(row, dict):
        return row.get(name, default)
    return getattr(row, name, default)


def pane_row(row: Any) -> dict[str, Any]:
    """One Pane of Glass row with exactly the fields `cleanday ledger --json` promises."""
    failed_on = _field(row, "last_gate_failure")
    if isinstance(failed_on, datetime):
        failed_on = failed_on.date()
    return {
        "name": _field(row, "name"),
        "tier": to_jsonable(_field(row, "tier")),
        "status": to_jsonable(_field(row, "status")),
        "clean_days": _field(row, "clean_days"),
        "candidate": bool(_field(row, "candidate", False)),
        "last_gate_failure": to_jsonable(failed_on),
        "last_failure_reason": _field(row, "last_failure_reason"),
    }
