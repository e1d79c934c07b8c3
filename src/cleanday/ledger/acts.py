"""The operator's acts on a behavior: overrides (a forced tier among them), pause and resume,
and restoring a preset version (retiring is `cleanday.ledger.retirement`, the Sunday decisions
`cleanday.ledger.decisions`)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from cleanday.chain import NewEntry
from cleanday.domain import OVERRIDE_KINDS, EntryKind, Status, Tier
from cleanday.errors import DecisionError, OverrideError
from cleanday.ledger import reads
from cleanday.ledger.core import LedgerCore, behavior
from cleanday.ledger.folding import commit_facts
from cleanday.ledger.schemas import BehaviorRow
from cleanday.models import T_BEHAVIORS
from cleanday.notices import PresetPublished, StateChanged, StatusChanged
from cleanday.presets import PresetStore

_VERBS = {EntryKind.PAUSED: "pause", EntryKind.RESUMED: "resume"}
_ALLOWED = {
    EntryKind.PAUSED: {Status.ACTIVE},
    EntryKind.RESUMED: {Status.PAUSED, Status.QUARANTINED},
}


def override(
    ledger: LedgerCore,
    name: str,
    reason: str,
    kind: str = "manual",
    tier: Tier | None = None,
    run_id: str | None = None,
) -> BehaviorRow:
    """Record an operator override (resets the clock); with `tier`, force the tier."""
    if kind not in OVERRIDE_KINDS:
        raise OverrideError(
            f"unknown override kind {kind!r}; use one of {', '.join(OVERRIDE_KINDS)} "
            "(forced_tier is given by --tier)"
        )
    data: dict[str, Any] = {"reason": reason, "kind": kind}
    if tier is not None:
        data["kind"] = "forced_tier"
        data["tier"] = Tier(tier).value
    if run_id is not None:
        data["run_id"] = run_id
    with ledger.unit_of_work() as uow:
        behavior(uow.conn, name)
        key = f"override:{uuid.uuid4().hex}"
        commit_facts(
            ledger, uow, name, [NewEntry(name, EntryKind.OVERRIDE.value, uow.now, key, data)]
        )
        return reads.row(uow.conn, name)


def change_status(
    ledger: LedgerCore, name: str, kind: EntryKind, by: str = "operator", reason: str = ""
) -> BehaviorRow:
    """Pause or resume (which also lifts a quarantine) a behavior."""
    with ledger.unit_of_work() as uow:
        now = uow.now
        state = ledger.view(uow.conn, name, now)
        if state.status not in _ALLOWED[kind]:
            raise DecisionError(f"cannot {_VERBS[kind]} {name}: it is {state.status.value}")
        data = {"by": by, **({"reason": reason} if reason else {})}
        fact = NewEntry(name, kind.value, now, f"{kind.value}:{uuid.uuid4().hex}", data)
        folded = commit_facts(ledger, uow, name, [fact])
        uow.conn.execute(
            sa.update(T_BEHAVIORS).where(T_BEHAVIORS.c.name == name).values(status_changed_at=now)
        )
        uow.notify(StatusChanged(name, now, state.status, folded.state.status, by, reason))
        return reads.row(uow.conn, name)


def restore_preset(ledger: LedgerCore, name: str, version: int, by: str = "operator") -> int:
    """Make a new preset version equal to `version` (history is kept) and publish it for the
    behavior's tier; returns the new version's number. Raises what a lifecycle publication
    raises (PresetPublished and StateChanged, for their reactions)."""
    with ledger.unit_of_work() as uow:
        now = uow.now
        state = ledger.view(uow.conn, name, now)
        store = PresetStore(ledger.engine, clock=lambda: now)
        restored = store.restore(name, version, conn=uow.conn)
        reason = f"restored v{version} by {by}"
        store.publish(name, state.tier, restored.version, reason, conn=uow.conn)
        key = f"restore:v{restored.version}"
        uow.notify(
            PresetPublished(name, now, restored.version, state.tier, reason, key, restored=True)
        )
        r = reads.row(uow.conn, name)
        uow.notify(
            StateChanged(
                name,
                now,
                tier=r.tier,
                status=r.status,
                clean_days=r.clean_days,
                candidate=r.candidate,
                last_gate_failure=r.last_gate_failure,
                last_failure_gate=r.last_failure_gate,
                last_failure_reason=r.last_failure_reason,
                version=r.version,
                preset_version=r.preset_version,
            )
        )
        return restored.version
