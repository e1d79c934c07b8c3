"""Tier A's proposals and tier B's staged items: stored as runs report them, and signed off by
the operator (approve, reject, release) or by the clock (expiry), each sign-off a chained entry
(`cleanday.ledger.permits` grants act permits from those entries)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday.chain import NewEntry
from cleanday.domain import EntryKind
from cleanday.errors import DecisionError
from cleanday.ledger.core import DEFAULT_DOOR, LedgerCore, behavior
from cleanday.ledger.folding import commit_facts
from cleanday.ledger.schemas import BatchResult, ItemIn, RunReport
from cleanday.ledger.unit_of_work import UnitOfWork
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


def item_key(kind: EntryKind, item_id: str) -> str:
    """The entry key of a sign-off fact on one item (unique per behavior, as item IDs are)."""
    key = f"{kind.value}:{item_id}"
    if len(key) > 256:  # item IDs run to 256 characters; keys too
        key = f"{kind.value}:sha256:{hashlib.sha256(item_id.encode()).hexdigest()}"
    return key


def _facts(
    name: str, kind: EntryKind, signed: Sequence[SignedItem], now: datetime, **data: Any
) -> list[NewEntry]:
    """One chained entry per item signed off: what a permit is later granted from."""
    return [
        NewEntry(
            name,
            kind.value,
            now,
            item_key(kind, s.item_id),
            {"item_id": s.item_id, "run_id": s.run_id, **data},
        )
        for s in signed
    ]


def expire_items(uow: UnitOfWork, name: str | None = None) -> int:
    """Mark staged items past their expiry as expired (no penalty), each with its `expired`
    entry; returns how many."""
    conn, now = uow.conn, uow.now
    query = sa.select(T_PENDING.c.behavior, T_PENDING.c.item_id, T_PENDING.c.run_id).where(
        T_PENDING.c.kind == "staged",
        T_PENDING.c.status == "pending",
        T_PENDING.c.expires_at <= now,
    )
    if name is not None:
        query = query.where(T_PENDING.c.behavior == name)
    found = conn.execute(query.order_by(T_PENDING.c.id)).all()
    if not found:
        return 0
    by_behavior: dict[str, list[SignedItem]] = {}
    for r in found:
        by_behavior.setdefault(str(r.behavior), []).append(SignedItem(r.item_id, str(r.run_id)))
    for behavior_name, signed in by_behavior.items():
        ids = [s.item_id for s in signed]
        conn.execute(
            sa.update(T_PENDING)
            .where(T_PENDING.c.behavior == behavior_name, T_PENDING.c.item_id.in_(ids))
            .values(status="expired", decided_at=now)
        )
        uow.append(_facts(behavior_name, EntryKind.EXPIRED, signed, now))
    return len(found)


def approve(
    ledger: LedgerCore,
    name: str,
    item_ids: Sequence[str] | None = None,
    by: str = "operator",
    door: str = DEFAULT_DOOR,
) -> BatchResult:
    """Sign off a tier-A batch (all pending proposals when item_ids is None): one `approved`
    entry per item, which is what its act permit is granted from."""
    with ledger.unit_of_work() as uow:
        behavior(uow.conn, name)
        signed = _sign_off(uow.conn, name, "proposal", item_ids, "approved", by, uow.now)
        if signed:
            uow.append(_facts(name, EntryKind.APPROVED, signed, uow.now, by=by, door=door))
            uow.notify(ItemsSignedOff(name, uow.now, "approved", signed, by))
    return BatchResult(behavior=name, action="approved", items=[i.item_id for i in signed])


def reject(
    ledger: LedgerCore,
    name: str,
    item_ids: Sequence[str] | None = None,
    reason: str = "",
    by: str = "operator",
    door: str = DEFAULT_DOOR,
) -> BatchResult:
    """Reject proposals; a rejection is an operator override (naming the items, who and
    through which door) and resets the clock."""
    with ledger.unit_of_work() as uow:
        behavior(uow.conn, name)
        signed = _sign_off(uow.conn, name, "proposal", item_ids, "rejected", by, uow.now)
        if signed:
            ids = [i.item_id for i in signed]
            reason = reason or "proposals rejected"
            data: dict[str, Any] = {
                "reason": reason,
                "kind": "rejected",
                "items": ids,
                "by": by,
                "door": door,
            }
            key = f"override:{uuid.uuid4().hex}"
            fact = NewEntry(name, EntryKind.OVERRIDE.value, uow.now, key, data)
            commit_facts(ledger, uow, name, [fact])
            uow.notify(ItemsSignedOff(name, uow.now, "rejected", signed, by, reason))
    return BatchResult(behavior=name, action="rejected", items=[i.item_id for i in signed])


def release(
    ledger: LedgerCore, name: str, item_id: str, by: str = "operator", door: str = DEFAULT_DOOR
) -> BatchResult:
    """Release one tier-B staged item so that it may act (its `released` entry)."""
    with ledger.unit_of_work() as uow:
        behavior(uow.conn, name)
        expire_items(uow, name)
        signed = _sign_off(uow.conn, name, "staged", [item_id], "released", by, uow.now)
        uow.append(_facts(name, EntryKind.RELEASED, signed, uow.now, by=by, door=door))
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
