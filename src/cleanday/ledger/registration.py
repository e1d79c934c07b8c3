"""Registering a Work Order: a new behavior at tier A with its clock started, an unchanged file
that changes nothing, or a new version; its preset version recorded in the same transaction.
A retired behavior is registered again only to revive it (`cleanday.ledger.retirement`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import sqlalchemy as sa

from cleanday import ladder
from cleanday.chain import NewEntry
from cleanday.domain import EntryKind, Status, Tier
from cleanday.errors import BehaviorRetired, ConfigError, RegistrationError, WorkOrderError
from cleanday.ledger import reads, retirement, store
from cleanday.ledger.core import LedgerCore
from cleanday.ledger.folding import commit_facts
from cleanday.ledger.schemas import RegistrationResult
from cleanday.models import T_BEHAVIORS, T_ENTRIES, T_STATES, T_VERSIONS
from cleanday.notices import Registered
from cleanday.presets import PresetStore, check_tightening
from cleanday.registration import (
    code_hash,
    content_hash,
    key_already_bound,
    load_work_order,
    preset_hash,
)
from cleanday.workorder import WorkOrder


def register(
    ledger: LedgerCore, work_order_path: Path | str, *, revive: bool = False
) -> RegistrationResult:
    """Register (or re-register, or with `revive` bring back) the behavior a Work Order file
    declares."""
    path = Path(work_order_path)
    wo = load_work_order(path)
    text = path.read_text(encoding="utf-8")
    return register_work_order(ledger, wo, str(path), text=text, revive=revive)


def register_work_order(
    ledger: LedgerCore,
    wo: WorkOrder,
    source: str,
    text: str | None = None,
    *,
    revive: bool = False,
) -> RegistrationResult:
    """Register a validated Work Order: new (tier A, clock started), unchanged, or a new
    version. Refuses a key reference already bound to another behavior. A changed preset is
    a new preset version, numbered where `cleanday preset history` reads it.

    A retired behavior's name is refused (BehaviorRetired, naming the way forward) unless
    `revive`: then it comes back at tier A with a fresh clock, as a new version if its Work
    Order changed. `revive` for a behavior that is not retired is refused too."""
    try:
        check_tightening(wo.preset)
    except ConfigError as exc:
        raise WorkOrderError(source, str(exc), field="preset.tiers") from None
    chash, phash, code = content_hash(wo), preset_hash(wo), code_hash(wo)
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
        before = None if existing is None else store.state_row(conn, wo.name)
        retired = before is not None and before.status == Status.RETIRED.value
        _check_revival(wo.name, source, retired, revive, existing is not None)
        before_code = None if existing is None else _registered_code(conn, wo.name)
        code_changed = before_code is not None and before_code != code
        unchanged = existing is not None and existing.content_hash == chash and not code_changed
        if existing is not None and unchanged and not revive:
            return RegistrationResult(
                name=wo.name,
                status="unchanged",
                version=existing.version,
                preset_version=existing.preset_version,
                tier=reads.row(conn, wo.name).tier,
                message=f"{wo.name}: unchanged (version {existing.version}); nothing written",
            )
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
        elif unchanged:  # a revival of the Work Order it had: its key bound again, no new version
            version = existing.version
            conn.execute(
                sa.update(T_BEHAVIORS)
                .where(T_BEHAVIORS.c.name == wo.name)
                .values(key_ref=wo.key.ref, source_path=source, updated_at=now)
            )
            retirement.revive(
                uow, ledger, wo, version=version, preset_version=preset_version, source=source
            )
            return _revived(wo.name, version, preset_version)
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
                "code_hash": code,
                "source": source,
            },
        )
        commit_facts(ledger, uow, wo.name, [fact], before={wo.name: before})
        new = existing is None
        changed = existing is None or preset_version != existing.preset_version
        uow.notify(Registered(wo.name, now, version, preset_version, new, changed, source))
        if revive:  # back with a new version of its Work Order
            retirement.revive(
                uow, ledger, wo, version=version, preset_version=preset_version, source=source
            )
            return _revived(wo.name, version, preset_version)
        tier = reads.row(conn, wo.name).tier
    if existing is None:
        msg = f"{wo.name}: registered at tier A (version 1); its clean-day clock has started"
        status: Literal["new", "unchanged", "new_version", "revived"] = "new"
    else:
        msg = f"{wo.name}: new version {version} (preset version {preset_version})"
        if code_changed:
            msg += (
                "; its step code changed: workers running it keep the old code until they "
                "reload (`cleanday reload`, or SIGHUP to each `cleanday worker`)"
            )
        status = "new_version"
    return RegistrationResult(
        name=wo.name,
        status=status,
        version=version,
        preset_version=preset_version,
        tier=tier,
        message=msg,
        reload_workers=code_changed,
    )


def _check_revival(name: str, source: str, retired: bool, revive: bool, exists: bool) -> None:
    """A retired name is registered again only to revive it, and only a retired one revives."""
    if retired and not revive:
        raise BehaviorRetired(
            f"work order {source}: behavior {name} is retired, so its name is not registered "
            f"again as it is; {retirement.revive_hint(name)}, or give the new behavior "
            "another name"
        )
    if revive and not retired:
        what = "is not registered" if not exists else "is not retired"
        raise RegistrationError(
            f"work order {source}: cannot revive {name}: it {what}; register it without --revive"
        )


def _revived(name: str, version: int, preset_version: int) -> RegistrationResult:
    return RegistrationResult(
        name=name,
        status="revived",
        version=version,
        preset_version=preset_version,
        tier=Tier.A,
        message=f"{name}: revived at tier A (version {version}); its clean-day clock starts "
        "again at 0",
    )


def _registered_code(conn: sa.Connection, name: str) -> str | None:
    """The step code hash of the behavior's latest registration (None before it was kept)."""
    data = conn.execute(
        sa.select(T_ENTRIES.c.data)
        .where(T_ENTRIES.c.behavior == name, T_ENTRIES.c.kind == EntryKind.REGISTERED.value)
        .order_by(T_ENTRIES.c.seq.desc())
        .limit(1)
    ).scalar()
    found = (data or {}).get("code_hash") if isinstance(data, dict) else None
    return str(found) if found else None
