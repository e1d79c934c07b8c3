"""Retiring a behavior and bringing one back.

Retiring stops it for good: no more run reports, no permits, its Schedule deleted, and its
model key released, so another behavior may register with that key (a `key_released` entry
and a log line record the release). Reviving (`cleanday register --revive PATH`) registers its
Work Order again and brings it back at tier A with a fresh clock, as a `revived` entry in the
chain; a rebuild or replay folds that entry like any other.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday.chain import NewEntry
from cleanday.domain import EntryKind, Status, Tier
from cleanday.errors import DecisionError
from cleanday.ledger import reads
from cleanday.ledger.core import LedgerCore, behavior
from cleanday.ledger.folding import commit_facts
from cleanday.ledger.schemas import BehaviorRow
from cleanday.ledger.unit_of_work import UnitOfWork
from cleanday.models import T_BEHAVIORS
from cleanday.notices import PresetPublished, StatusChanged
from cleanday.presets import PresetStore
from cleanday.router.tables import RoutingBinding
from cleanday.workorder import WorkOrder

log = logging.getLogger(__name__)

_BINDINGS: sa.Table = RoutingBinding.__table__  # type: ignore[attr-defined]
_RETIRABLE = (Status.ACTIVE, Status.PAUSED, Status.QUARANTINED)
RELEASED_PREFIX = "released:"


def released_ref(name: str) -> str:
    """What a retired behavior's `behaviors.key_ref` holds once its key is released: unique
    per behavior (the column is unique) and in no secret-reference scheme, so no Work Order
    can ever claim it. The released reference itself is kept in the `key_released` entry."""
    return f"{RELEASED_PREFIX}{name}"


def revive_hint(name: str) -> str:
    return (
        f"`cleanday register --revive PATH` (PATH: {name}'s Work Order file) brings it back at "
        "tier A with a fresh clock"
    )


def retire(ledger: LedgerCore, name: str, by: str = "operator", reason: str = "") -> BehaviorRow:
    """Retire `name` (active, paused or quarantined) and release its model key, in one
    transaction."""
    with ledger.unit_of_work() as uow:
        now = uow.now
        state = ledger.view(uow.conn, name, now)
        if state.status not in _RETIRABLE:
            raise DecisionError(f"cannot retire {name}: it is {state.status.value}")
        data = {"by": by, **({"reason": reason} if reason else {})}
        key = f"{EntryKind.RETIRED.value}:{uuid.uuid4().hex}"
        folded = commit_facts(
            ledger, uow, name, [NewEntry(name, EntryKind.RETIRED.value, now, key, data)]
        )
        _release_key(uow, name, by)
        uow.notify(StatusChanged(name, now, state.status, folded.state.status, by, reason))
        return reads.row(uow.conn, name)


def _release_key(uow: UnitOfWork, name: str, by: str) -> None:
    """Free the key reference in the ledger and in the router's binding, and log it."""
    conn, now = uow.conn, uow.now
    ref = str(behavior(conn, name).key_ref)
    conn.execute(
        sa.update(T_BEHAVIORS)
        .where(T_BEHAVIORS.c.name == name)
        .values(key_ref=released_ref(name), status_changed_at=now, updated_at=now)
    )
    # the binding goes (its spend history stays, by behavior): another behavior binds the key
    conn.execute(sa.delete(_BINDINGS).where(_BINDINGS.c.behavior == name))
    data = {"key_ref": ref, "by": by}
    key = f"{EntryKind.KEY_RELEASED.value}:{uuid.uuid4().hex}"  # a revived one may retire again
    uow.append([NewEntry(name, EntryKind.KEY_RELEASED.value, now, key, data)])
    log.info("behavior %s retired: its key %s is released for reuse", name, ref)


def revive(
    uow: UnitOfWork,
    ledger: LedgerCore,
    wo: WorkOrder,
    *,
    version: int,
    preset_version: int,
    source: str,
) -> None:
    """The `revived` entry of a retired behavior whose Work Order was just registered again
    (`key_ref` already rebound by the registration): active at A, clock at zero, its key bound
    in the router again, its current preset version published for A and its Schedule brought
    back."""
    conn, now, name = uow.conn, uow.now, wo.name
    _rebind_key(conn, wo, now)
    data = {"version": version, "by": "operator", "source": source}
    fact = NewEntry(name, EntryKind.REVIVED.value, now, f"revived:{uuid.uuid4().hex}", data)
    folded = commit_facts(ledger, uow, name, [fact])
    store = PresetStore(conn.engine, clock=lambda: now)
    if store.latest(name, conn=conn) is not None:  # None: a ledger used without the router
        store.publish(name, Tier.A, preset_version, "revival", conn=conn)
        uow.notify(PresetPublished(name, now, preset_version, Tier.A, "revival", fact.key))
    uow.notify(StatusChanged(name, now, Status.RETIRED, folded.state.status, "operator"))
    log.info("behavior %s revived at tier A (version %d) from %s", name, version, source)


def _rebind_key(conn: Connection, wo: WorkOrder, now: datetime) -> None:
    """The router's binding the retirement removed, back as the Work Order has it: a worker
    that still holds this Work Order version does not bind it again before its next run."""
    values = dict(
        key_ref=wo.key.ref,
        cap_usd=wo.key.cap_usd,
        cadence=wo.key.cadence,
        transports=list(wo.transports.order),
        guardrails=wo.guardrails.model_dump(mode="json", exclude_unset=True),
        updated_at=now,
    )
    where = _BINDINGS.c.behavior == wo.name
    if conn.execute(sa.select(_BINDINGS.c.behavior).where(where)).first() is not None:
        conn.execute(sa.update(_BINDINGS).where(where).values(**values))
        return
    conn.execute(sa.insert(_BINDINGS).values(behavior=wo.name, bound_at=now, **values))
