"""A behavior's state as stored and as shown: the one mapping from what the ladder concluded to
the state row's columns (`state_values`), and from those columns to the Pane of Glass row
(`behavior_row`), whoever holds them (a fold just done, the ORM, the driver)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from cleanday.domain import BehaviorState, Decision, Status, Tier
from cleanday.ledger.schemas import BehaviorRow

_ROW_FIELDS = frozenset(BehaviorRow.model_fields)
_new_object = object.__new__
_set_attr = object.__setattr__
# plain dict lookups: Enum.__call__ costs more than the rest of a row (a str key finds its member)
_TIERS = {t.value: t for t in Tier}
_STATUSES = {s.value: s for s in Status}


def state_values(state: BehaviorState) -> dict[str, Any]:
    """The cached columns of a state row, from what the ladder concluded."""
    lf = state.last_failure
    return {
        "tier": state.tier.value,
        "status": state.status.value,
        "clean_days": state.clean_days,
        "candidate": state.candidate,
        "last_gate_failure": lf.on if lf else None,
        "last_failure_gate": lf.gate if lf else None,
        "last_failure_reason": lf.reason if lf else None,
        "last_failure_run": lf.run_id if lf else None,
        "tier_since": state.tier_since,
        "quarantined_at": state.quarantined_at,
    }


def behavior_row(
    name: str,
    tier: str,
    status: str,
    clean_days: int,
    candidate: Any,
    last_gate_failure: date | str | None,
    last_failure_gate: str | None,
    last_failure_reason: str | None,
    tier_since: datetime | str | None,
    updated_at: datetime | str | None,
    version: int,
    preset_version: int,
    /,
    *,
    decision: Decision | None = None,
) -> BehaviorRow:
    """The Pane of Glass row from a state row's columns, in this order (`PANE_COLUMNS`), as
    the ORM or the driver returns them: SQLite's text dates and naive UTC times included."""
    return pane_row(
        name=name,
        tier=_TIERS[tier],
        status=_STATUSES[status],
        clean_days=clean_days,
        candidate=bool(candidate),
        last_gate_failure=date.fromisoformat(last_gate_failure)
        if isinstance(last_gate_failure, str)
        else last_gate_failure,
        last_failure_gate=last_failure_gate,
        last_failure_reason=last_failure_reason,
        tier_since=_utc(tier_since),
        updated_at=_utc(updated_at),
        version=version,
        preset_version=preset_version,
        decision=decision,
    )


def row_of(r: Any) -> BehaviorRow:
    """The row of a state row read with its behavior's versions (`store.state_row`)."""
    return behavior_row(
        r.behavior,
        r.tier,
        r.status,
        r.clean_days,
        r.candidate,
        r.last_gate_failure,
        r.last_failure_gate,
        r.last_failure_reason,
        r.tier_since,
        r.updated_at,
        r.version,
        r.preset_version,
    )


def row_of_state(
    state: BehaviorState, *, version: int, preset_version: int, updated_at: datetime | None
) -> BehaviorRow:
    """The row of what a fold concluded (about to be stored, or a replay's), without reading
    it back: the same row `behavior_row` makes of its stored columns."""
    lf = state.last_failure
    return pane_row(
        name=state.behavior,
        tier=state.tier,
        status=state.status,
        clean_days=state.clean_days,
        candidate=state.candidate,
        last_gate_failure=lf.on if lf else None,
        last_failure_gate=lf.gate if lf else None,
        last_failure_reason=lf.reason if lf else None,
        tier_since=_utc(state.tier_since),
        updated_at=_utc(updated_at),
        version=version,
        preset_version=preset_version,
        decision=None,
    )


def pane_row(**values: Any) -> BehaviorRow:
    """`BehaviorRow.model_construct` for a row with every field given, from values already
    typed: the same object without the per-field default and alias lookups, which cost several
    times more than the rest when listing 10,000 behaviors."""
    row = _new_object(BehaviorRow)
    _set_attr(row, "__dict__", values)
    _set_attr(row, "__pydantic_fields_set__", set(_ROW_FIELDS))
    _set_attr(row, "__pydantic_extra__", None)
    _set_attr(row, "__pydantic_private__", None)
    return row


def _utc(v: datetime | str | None) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, str):  # SQLite keeps naive UTC text
        v = datetime.fromisoformat(v)
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
