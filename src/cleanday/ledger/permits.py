"""Act permits, granted from the chain: the tier and status the chain's entries support, and
at A and B the item's `approved` or `released` entry; each permit granted is itself a chained
`permit` entry (the act's audit, found again by a retry of the same run).

Neither the `pending_items` row nor the stored accumulator can grant a permit on its own: an
edited row or accumulator that claims more than the chain is bounded by the chain here, and
named by `ledger verify`.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday.chain import NewEntry
from cleanday.domain import BehaviorState, EntryKind, Status, Tier
from cleanday.errors import PermitDenied
from cleanday.ledger.core import LedgerCore
from cleanday.ledger.items import expire_items, item_key
from cleanday.ledger.schemas import Permit
from cleanday.ledger.unit_of_work import UnitOfWork
from cleanday.models import T_ENTRIES, T_PENDING

_TIER_KINDS = (EntryKind.PROMOTED.value, EntryKind.DEMOTED.value)
_STATUS_KINDS = {
    EntryKind.PAUSED.value: Status.PAUSED,
    EntryKind.RESUMED.value: Status.ACTIVE,
    EntryKind.RETIRED.value: Status.RETIRED,
    EntryKind.REVIVED.value: Status.ACTIVE,
    EntryKind.QUARANTINED.value: Status.QUARANTINED,
}


def _latest(kinds: Any) -> sa.Select[Any]:
    return (
        sa.select(T_ENTRIES.c.kind, T_ENTRIES.c.data)
        .where(T_ENTRIES.c.behavior == sa.bindparam("name"), T_ENTRIES.c.kind.in_(kinds))
        .order_by(T_ENTRIES.c.seq.desc())
        .limit(1)
    )


_Q_TIER = _latest(_TIER_KINDS)
_Q_STATUS = _latest(tuple(_STATUS_KINDS))
_Q_ENTRY = sa.select(T_ENTRIES.c.seq, T_ENTRIES.c.data).where(
    T_ENTRIES.c.behavior == sa.bindparam("name"), T_ENTRIES.c.key == sa.bindparam("key")
)


def chain_standing(conn: Connection, name: str) -> tuple[Tier, Status]:
    """The tier and status the chain itself records for `name`: the newest tier-change entry
    (A before any) and the newest status entry (active before any). Two indexed reads."""
    row = conn.execute(_Q_TIER, {"name": name}).first()
    tier = Tier(row.data["to"]) if row is not None else Tier.A
    row = conn.execute(_Q_STATUS, {"name": name}).first()
    status = _STATUS_KINDS[row.kind] if row is not None else Status.ACTIVE
    return tier, status


def bounded(state: BehaviorState, tier: Tier, status: Status) -> BehaviorState:
    """`state` with no more trust than the chain's standing: the lower tier of the two, and a
    status other than active from either side."""
    if tier.rank < state.tier.rank:
        state = replace(state, tier=tier)
    if state.status == Status.ACTIVE and status != Status.ACTIVE:
        state = replace(state, status=status)
    return state


def permit_key(run_id: str) -> str:
    key = f"permit:{run_id}"
    if len(key) > 256:
        key = f"permit:sha256:{hashlib.sha256(run_id.encode()).hexdigest()}"
    return key


def request_permit(
    ledger: LedgerCore, name: str, run_id: str, *, item_id: str | None = None
) -> Permit:
    """Grant an act permit, deciding on the chain at this moment; raises PermitDenied.

    Decided afresh each time it is asked; a run's first grant is its `permit` entry, and a
    retry that is granted again gets that same permit back. At C and Wings the tier decides;
    at A and B the item's approved or released entry.
    """
    denied: PermitDenied | None = None
    with ledger.unit_of_work() as uow:
        conn, now = uow.conn, uow.now
        state = bounded(ledger.view(conn, name, now), *chain_standing(conn, name))
        try:
            permit = _tier_permit(name, run_id, item_id, state, now)
            if permit is None:
                permit = _item_permit(uow, name, run_id, item_id, state)
        except PermitDenied as exc:
            denied = exc  # raised after the commit, so that the expiries it found are kept
        else:
            return _grant(uow, name, run_id, permit)
    raise denied


def _grant(uow: UnitOfWork, name: str, run_id: str, permit: Permit) -> Permit:
    """The run's permit entry: appended on its first grant, the same one again on a retry."""
    key = permit_key(run_id)
    prior = uow.conn.execute(_Q_ENTRY, {"name": name, "key": key}).first()
    if prior is not None:
        return Permit.model_validate({**prior.data, "behavior": name, "seq": prior.seq})
    data = permit.model_dump(mode="json", exclude={"behavior", "granted", "seq"})
    (row,) = uow.append([NewEntry(name, EntryKind.PERMIT.value, uow.now, key, data)])
    return permit.model_copy(update={"seq": row["seq"]})


def _item_permit(
    uow: UnitOfWork, name: str, run_id: str, item_id: str | None, state: BehaviorState
) -> Permit:
    """At A and B: granted from the item's approved (A) or released (B) entry."""
    conn, now = uow.conn, uow.now
    kind, what = (
        (EntryKind.APPROVED, "an approved proposal")
        if state.tier == Tier.A
        else (EntryKind.RELEASED, "a released staged item")
    )
    if item_id is None:
        raise PermitDenied(
            f"{name} is at tier {state.tier.value}: it may act only on {what}; no item_id was given"
        )
    expire_items(uow, name)
    fact = conn.execute(_Q_ENTRY, {"name": name, "key": item_key(kind, item_id)}).first()
    if fact is None:
        item = conn.execute(
            sa.select(T_PENDING.c.kind, T_PENDING.c.status).where(
                T_PENDING.c.behavior == name, T_PENDING.c.item_id == item_id
            )
        ).first()
        found = "does not exist" if item is None else f"is {item.kind}, {item.status}"
        if item is not None and item.status == kind.value:
            found += f", but the ledger holds no {kind.value} entry for it (run ledger verify)"
        raise PermitDenied(
            f"{name} is at tier {state.tier.value}: it may act only on {what}; "
            f"item {item_id} {found}"
        )
    by = fact.data.get("by") or "the operator"
    return Permit(
        behavior=name,
        run_id=run_id,
        tier=state.tier,
        item_id=item_id,
        reason=f"item {item_id} {kind.value} by {by} (entry {fact.seq})",
        granted_at=now,
    )


def _tier_permit(
    name: str, run_id: str, item_id: str | None, state: BehaviorState, now: datetime
) -> Permit | None:
    """The permit the state alone decides: denied unless active, granted at C and Wings;
    None at A and B, where the item decides."""
    if state.status == Status.RETIRED:
        raise PermitDenied(
            f"{name} is retired: a retired behavior gets no act permits; "
            "`cleanday register --revive PATH` brings it back at tier A"
        )
    if state.status != Status.ACTIVE:
        raise PermitDenied(f"{name} is {state.status.value}: no act permits until it is resumed")
    if state.tier in (Tier.C, Tier.WINGS):
        return Permit(
            behavior=name,
            run_id=run_id,
            tier=state.tier,
            item_id=item_id,
            reason=f"tier {state.tier.value} acts without per-task approval",
            granted_at=now,
        )
    return None
