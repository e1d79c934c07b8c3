"""Registering a Work Order: a new behavior at tier A with its clock started, an unchanged file
that changes nothing, or a new version; its preset version recorded in the same transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import sqlalchemy as sa

from cleanday import ladder
from cleanday.chain import NewEntry
from cleanday.domain import EntryKind, Status, Tier
from cleanday.errors import ConfigError, RegistrationError, WorkOrderError
from cleanday.ledger import reads, store
from cleanday.ledger.core import LedgerCore
from cleanday.ledger.folding import commit_facts
from cleanday.ledger.schemas import RegistrationResult
from cleanday.models import T_BEHAVIORS, T_STATES, T_VERSIONS
from cleanday.notices import Registered
from cleanday.presets import PresetStore, check_tightening
from cleanday.registration import content_hash, key_already_bound, load_work_order, preset_hash
from cleanday.workorder import WorkOrder


def register(ledger: LedgerCore, work_order_path: Path | str) -> RegistrationResult:
    """Register (or re-register) the behavior a Work Order file declares."""
    path = Path(work_order_path)
    wo = load_work_order(path)
    return register_work_order(ledger, wo, str(path), text=path.read_text(encoding="utf-8"))


def register_work_order(
    ledger: LedgerCore, wo: WorkOrder, source: str, text: str | None = None
) -> RegistrationResult:
    """Register a validated Work Order: new (tier A, clock started), unchanged, or a new
    version. Refuses a key reference already bound to another behavior. A changed preset is
    a new preset version, numbered where `cleanday preset history` reads it."""
    try:
        check_tightening(wo.preset)
    except ConfigError as exc:
        raise WorkOrderError(source, str(exc), field="preset.tiers") from None
    chash, phash = content_hash(wo), preset_hash(wo)
    with ledger.unit_of_work() as uow:
        conn, now = uow.conn, uow.now
        owner = conn.execute(
            sa.select(T_BEHAVIORS.c.name).where(
                T_BEHAVIORS.c.key_ref == wo.key.ref, T_BEHAVIORS.c.name != wo.name
            )
        ).scalar()
        if owner is not None:
            raise RegistrationError(key_already_bound(source, wo.key.ref, owner))
        existing = conn.execute(sa.select(T_BEHAVIORS).where(T_BEHAVIORS.c.name == wo.name)).first()
        if existing is not None and existing.content_hash == chash:
            return RegistrationResult(
                name=wo.name,
                status="unchanged",
                version=existing.version,
                preset_version=existing.preset_version,
                tier=reads.row(conn, wo.name).tier,
                message=f"{wo.name}: unchanged (version {existing.version}); nothing written",
            )
        before = None if existing is None else store.state_row(conn, wo.name)
        presets = PresetStore(ledger.engine, clock=lambda: now)
        if existing is None or existing.preset_hash != phash:
            preset_version = presets.record(wo.name, wo.preset, conn=conn).version
        else:
            preset_version = existing.preset_version  # a restore since may have moved it
        content = wo.model_dump(mode="json")
        columns = dict(
            work_order=content,
            work_order_text=text,
            content_hash=chash,
            preset_hash=phash,
            preset_version=preset_version,
            key_ref=wo.key.ref,
            idle_days=wo.idle_days.value,
            source_path=source,
            updated_at=now,
        )
        if existing is None:
            version = 1
            conn.execute(
                sa.insert(T_BEHAVIORS).values(
                    name=wo.name, version=1, registered_at=now, status_changed_at=now, **columns
                )
            )
            conn.execute(
                sa.insert(T_STATES).values(
                    behavior=wo.name,
                    tier=Tier.A.value,
                    status=Status.ACTIVE.value,
                    clean_days=0,
                    candidate=False,
                    accumulator=ladder.initial(wo.name).to_json(),
                    last_seq=0,
                    last_change_at=None,
                    updated_at=now,
                )
            )
        else:
            version = existing.version + 1
            conn.execute(
                sa.update(T_BEHAVIORS)
                .where(T_BEHAVIORS.c.name == wo.name)
                .values(version=version, **columns)
            )
        conn.execute(
            sa.insert(T_VERSIONS).values(
                behavior=wo.name,
                version=version,
                preset_version=preset_version,
                content_hash=chash,
                work_order=content,
                work_order_text=text,
                registered_at=now,
            )
        )
        fact = NewEntry(
            wo.name,
            EntryKind.REGISTERED.value,
            now,
            f"registered:v{version}",
            {
                "version": version,
                "preset_version": preset_version,
                "content_hash": chash,
                "source": source,
            },
        )
        commit_facts(ledger, uow, wo.name, [fact], before={wo.name: before})
        new = existing is None
        changed = existing is None or preset_version != existing.preset_version
        uow.notify(Registered(wo.name, now, version, preset_version, new, changed, source))
        tier = reads.row(conn, wo.name).tier
    if existing is None:
        msg = f"{wo.name}: registered at tier A (version 1); its clean-day clock has started"
        status: Literal["new", "unchanged", "new_version"] = "new"
    else:
        msg = f"{wo.name}: new version {version} (preset version {preset_version})"
        status = "new_version"
    return RegistrationResult(
        name=wo.name,
        status=status,
        version=version,
        preset_version=preset_version,
        tier=tier,
        message=msg,
    )
