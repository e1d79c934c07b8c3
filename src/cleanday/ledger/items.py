"""Tier A's proposals and tier B's staged items: stored as runs report them, signed off by the
operator (approve, reject, release), and the act permit that decides on them at that moment."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday.chain import NewEntry
from cleanday.domain import BehaviorState, EntryKind, Status, Tier
from cleanday.errors import DecisionError, PermitDenied
from cleanday.ledger.core import LedgerCore, behavior
from cleanday.ledger.folding import commit_facts
from cleanday.ledger.schemas import BatchResult, ItemIn, Permit, RunReport
from cleanday.models import T_PENDING
from cleanday.notices import ItemsSignedOff, SignedItem

SignOff = Literal["approved", "rejected", "released"]


def add_items(conn: Connection, report: RunReport, now: datetime) -> None:
    """Store the proposals (A) or staged items (B) a run produced; one per run by default."""
    if report.outcome not in ("proposed", "staged"):
        return
    beh = behavior(conn, report.behavior)
    kind = "proposal" if report.outcome == "proposed" else "staged"
    found = report.items or [ItemIn(id=report.run_id)]
    expires = None
    if kind == "staged":
        hours = float(beh.work_order.get("stage_expiry_hours", 72.0))
        expires = now + timedelta(hours=hours)
    conn.execute(
        sa.insert(T_PENDING),
        [
            {
                "item_id": it.id,
                "behavior": report.behavior,
                "run_id": report.run_id,
                "kind": kind,
                "status": "pending",
                "payload": it.payload,
                "created_at": now,
                "expires_at": expires,
                "decided_at": None,
                "decided_by": None,
            }
            for it in found
        ],
    )


def request_permit(
    ledger: LedgerCore, name: str, run_id: str, *, item_id: str | None = None
) -> Permit:
    """Grant an act permit, deciding on the state at this moment; raises PermitDenied.

    At C and Wings the permit only reads the behavior's state, in a read transaction that
    does not wait for writers: it sees every demotion committed before it was asked. At A
    and B it checks the item under the write lock, expiring staged items past their time.
    """
    now = ledger.now()
    with ledger.engine.connect() as conn:
        state = ledger.view(conn, name, now)
    if (permit := _tier_permit(name, run_id, item_id, state, now)) is not None:
        return permit
    with ledger.unit_of_work(now, lock_chain=False) as uow:
        state = ledger.view(uow.conn, name, now)
        if (permit := _tier_permit(name, run_id, item_id, state, now)) is not None:
            return permit  # promoted to C since the read
        want_kind, want_status = (
            ("proposal", "approved") if state.tier == Tier.A else ("staged", "released")
        )
        what = "an approved proposal" if state.tier == Tier.A else "a released staged item"
        if item_id is None:
            raise PermitDenied(
                f"{name} is at tier {state.tier.value}: it may act only on {what}; "
                "no item_id was given"
            )
        expire_items(uow.conn, now, name)
        item = uow.conn.execute(
            sa.select(T_PENDING).where(T_PENDING.c.behavior == name, T_PENDING.c.item_id == item_id)
        ).first()
        if item is None or item.kind != want_kind or item.status != want_status:
            found = "does not exist" if item is None else f"is {item.kind}, {item.status}"
            raise PermitDenied(
                f"{name} is at tier {state.tier.value}: it may act only on {what}; "
                f"item {item_id} {found}"
            )
        return Permit(
            behavior=name,
            run_id=run_id,
            tier=state.tier,
            item_id=item_id,
            reason=f"item {item_id} {want_status} by {item.decided_by or 'the operator'}",
            granted_at=now,
        )


def _tier_permit(
    name: str, run_id: str, item_id: str | None, state: BehaviorState, now: datetime
) -> Permit | None:
    """The permit the state alone decides: denied unless active, granted at C and Wings;
    None at A and B, where the item decides."""
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


def expire_items(conn: Connection, now: datetime, name: str | None = None) -> int:
    """Mark staged items past their expiry as expired (no penalty); returns how many."""
    stmt = (
        sa.update(T_PENDING)
        .where(
            T_PENDING.c.kind == "staged",
            T_PENDING.c.status == "pending",
            T_PENDING.c.expires_at <= now,
        )
        .values(status="expired", decided_at=now)
    )
    if name is not None:
        stmt = stmt.where(T_PENDING.c.behavior == name)
    return int(conn.execute(stmt).rowcount or 0)


def approve(
    ledger: LedgerCore, name: str, item_ids: Sequence[str] | None = None, by: str = "operator"
) -> BatchResult:
    """Sign off a tier-A batch (all pending proposals when item_ids is None)."""
    with ledger.unit_of_work() as uow:
        behavior(uow.conn, name)
        signed = _sign_off(uow.conn, name, "proposal", item_ids, "approved", by, uow.now)
        if signed:
            uow.notify(ItemsSignedOff(name, uow.now, "approved", signed, by))
    return BatchResult(behavior=name, action="approved", items=[i.item_id for i in signed])


def reject(
    ledger: LedgerCore,
    name: str,
    item_ids: Sequence[str] | None = None,
    reason: str = "",
    by: str = "operator",
) -> BatchResult:
    """Reject proposals; a rejection is an operator override and resets the clock."""
    with ledger.unit_of_work() as uow:
        behavior(uow.conn, name)
        signed = _sign_off(uow.conn, name, "proposal", item_ids, "rejected", by, uow.now)
        if signed:
            ids = [i.item_id for i in signed]
            reason = reason or "proposals rejected"
            data: dict[str, Any] = {"reason": reason, "kind": "rejected", "items": ids}
            key = f"override:{uuid.uuid4().hex}"
            fact = NewEntry(name, EntryKind.OVERRIDE.value, uow.now, key, data)
            commit_facts(ledger, uow, name, [fact])
            uow.notify(ItemsSignedOff(name, uow.now, "rejected", signed, by, reason))
    return BatchResult(behavior=name, action="rejected", items=[i.item_id for i in signed])


def release(ledger: LedgerCore, name: str, item_id: str, by: str = "operator") -> BatchResult:
    """Release one tier-B staged item so that it may act."""
    with ledger.unit_of_work() as uow:
        behavior(uow.conn, name)
        expire_items(uow.conn, uow.now, name)
        signed = _sign_off(uow.conn, name, "staged", [item_id], "released", by, uow.now)
        uow.notify(ItemsSignedOff(name, uow.now, "released", signed, by))
    return BatchResult(behavior=name, action="released", items=[item_id])


def _sign_off(
    conn: Connection,
    name: str,
    kind: str,
    item_ids: Sequence[str] | None,
    status: SignOff,
    by: str,
    now: datetime,
) -> tuple[SignedItem, ...]:
    """Move the pending items named (all of this kind when None) to `status`; refuses an item
    that does not exist or is no longer pending."""
    query = sa.select(T_PENDING.c.item_id, T_PENDING.c.run_id, T_PENDING.c.status).where(
        T_PENDING.c.behavior == name, T_PENDING.c.kind == kind
    )
    rows = {r.item_id: r for r in conn.execute(query).all()}
    if item_ids is None:
        ids = sorted(i for i, r in rows.items() if r.status == "pending")
    else:
        for i in item_ids:
            if i not in rows:
                raise DecisionError(f"{name} has no {kind} item {i!r}")
            if rows[i].status != "pending":
                raise DecisionError(f"{name}: {kind} item {i!r} is already {rows[i].status}")
        ids = list(item_ids)
    if ids:
        conn.execute(
            sa.update(T_PENDING)
            .where(T_PENDING.c.behavior == name, T_PENDING.c.item_id.in_(ids))
            .values(status=status, decided_at=now, decided_by=by)
        )
    return tuple(SignedItem(i, str(rows[i].run_id)) for i in ids)
