"""The ledger service layer: registration, run reports, permits, decisions, overrides, the day
and Sunday closes, verify/rebuild/replay — each method one transaction over the ledger database.

The ladder (`cleanday.ladder`) decides; this module stores what it is told, folds it into the
materialized state, and writes down (as derived audit entries and outbox rows) whatever the
ladder newly concluded.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from cleanday import chain, clock, ladder, store
from cleanday.chain import ChainProblem, NewEntry, VerifyResult, canonical_time
from cleanday.config import Settings, get_settings
from cleanday.db import is_sqlite, make_engine, migrate, write_connection
from cleanday.domain import (
    BehaviorState,
    Decision,
    Entry,
    EntryKind,
    IdlePolicy,
    Policy,
    Status,
    Tier,
    TierChange,
)
from cleanday.errors import (
    DecisionError,
    PermitDenied,
    RegistrationError,
    UnknownBehaviorError,
    UnknownItemError,
)
from cleanday.models import (
    T_BEHAVIORS,
    T_ENTRIES,
    T_PENDING,
    T_RUNS,
    T_STATES,
    T_VERSIONS,
)
from cleanday.registration import content_hash, key_already_bound, load_work_order, preset_hash
from cleanday.workorder import WorkOrder

__all__ = [
    "AnomalyIn",
    "BatchResult",
    "BehaviorRow",
    "ChainProblem",
    "DayCloseResult",
    "GateIn",
    "LedgerEntryRow",
    "LedgerService",
    "Medians",
    "Permit",
    "RebuildResult",
    "RegistrationResult",
    "ReportResult",
    "RunReport",
    "StateDifference",
    "SundayCloseResult",
    "VerifyResult",
]

# ---------------------------------------------------------------------------------------------
# What goes in and what comes out (pydantic, so the HTTP API and `--json` serialize them as is)

Outcome = Literal["succeeded", "failed", "blocked", "proposed", "staged", "expired"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateIn(_In):
    name: str = Field(min_length=1, max_length=64)
    passed: bool
    reason: str = ""


class AnomalyIn(_In):
    name: str = Field(min_length=1, max_length=64)
    detail: str = ""


class ItemIn(_In):
    """A proposal (tier A) or staged item (tier B) the run produced; defaults to one per run."""

    id: str = Field(min_length=1, max_length=256)
    payload: dict[str, Any] = Field(default_factory=dict)


class RunReport(_In):
    """A finished run, as the worker reports it (also the body of POST /api/v1/runs)."""

    behavior: str = Field(min_length=1, max_length=64)
    run_id: str = Field(min_length=1, max_length=256)
    workflow_id: str | None = Field(default=None, max_length=256)
    started_at: AwareDatetime
    finished_at: AwareDatetime
    outcome: Outcome
    gates: list[GateIn] = Field(default_factory=list)
    anomalies: list[AnomalyIn] = Field(default_factory=list)
    cost_usd: float = Field(ge=0)
    tokens_in: int | None = Field(default=None, ge=0)
    tokens_out: int | None = Field(default=None, ge=0)
    model: str | None = Field(default=None, max_length=256)
    transport: str | None = Field(default=None, max_length=32)
    latency_ms: float | None = Field(default=None, ge=0)
    output_size: int | None = Field(default=None, ge=0)
    summary: str | None = None
    items: list[ItemIn] = Field(default_factory=list)


class BehaviorRow(BaseModel):
    """One line of the Pane of Glass (and of `ledger --json`)."""

    name: str
    tier: Tier
    status: Status
    clean_days: int
    candidate: bool
    last_gate_failure: date | None
    last_failure_gate: str | None = None
    last_failure_reason: str | None = None
    tier_since: datetime | None = None
    version: int = 1
    preset_version: int = 1
    updated_at: datetime | None = None
    decision: Decision | None = None  # filled by `candidates(week)`


_ROW_FIELDS = frozenset(BehaviorRow.model_fields)
_new_object = object.__new__
_set_attr = object.__setattr__


def _pane_row(**values: Any) -> BehaviorRow:
    """`BehaviorRow.model_construct` for a row with every field given, from values the schema
    already typed: the same object without the per-field default and alias lookups, which
    cost several times more than the rest when listing 10,000 behaviors."""
    row = _new_object(BehaviorRow)
    _set_attr(row, "__dict__", values)
    _set_attr(row, "__pydantic_fields_set__", set(_ROW_FIELDS))
    _set_attr(row, "__pydantic_extra__", None)
    _set_attr(row, "__pydantic_private__", None)
    return row


class RegistrationResult(BaseModel):
    name: str
    status: Literal["new", "unchanged", "new_version"]
    version: int
    preset_version: int
    tier: Tier
    message: str


class ReportResult(BaseModel):
    behavior: str
    run_id: str
    recorded: bool  # False when this run_id was already recorded
    message: str
    state: BehaviorRow
    derived: list[str] = Field(default_factory=list)  # kinds of the audit entries written


class Permit(BaseModel):
    granted: bool = True
    behavior: str
    run_id: str
    tier: Tier
    item_id: str | None = None
    reason: str
    granted_at: datetime


class BatchResult(BaseModel):
    behavior: str
    action: Literal["approved", "rejected", "released"]
    items: list[str]


class PendingItemRow(BaseModel):
    """A tier-A proposal or tier-B staged item and where the operator's sign-off stands."""

    behavior: str
    item_id: str
    run_id: str
    kind: Literal["proposal", "staged"]
    status: Literal["pending", "approved", "rejected", "released", "expired", "acted"]
    payload: dict[str, Any]
    created_at: datetime
    expires_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None


class LedgerEntryRow(BaseModel):
    seq: int
    behavior: str
    kind: EntryKind
    at: datetime
    key: str
    data: dict[str, Any]
    prev_hash: str
    hash: str
    recorded_at: datetime


class DayCloseResult(BaseModel):
    date: date
    already_closed: bool
    behaviors: int  # behaviors whose state was refreshed
    entries_folded: int
    demoted: list[str] = Field(default_factory=list)
    quarantined: list[str] = Field(default_factory=list)
    expired_items: int = 0
    seconds: float = 0.0


class SundayCloseResult(BaseModel):
    week: date
    already_closed: bool
    promoted: list[str] = Field(default_factory=list)
    held: list[str] = Field(default_factory=list)
    outbox: int = 0


class StateDifference(BaseModel):
    behavior: str
    field: str
    stored: Any
    rebuilt: Any


class RebuildResult(BaseModel):
    behaviors: int
    entries: int
    differences: list[StateDifference]


class Medians(BaseModel):
    behavior: str
    days: int
    runs: int
    cost_usd: float | None
    latency_ms: float | None
    output_size: float | None


# ---------------------------------------------------------------------------------------------


@dataclass
class _Fold:
    """What folding new entries into one behavior's state produced, before it is stored."""

    name: str
    acc: Any
    state: BehaviorState
    last_seq: int
    derived: list[NewEntry] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    last_change_at: datetime | None = None
    acc_changed: bool = True
    applied: int = 0  # entries folded in now


_VERBS = {EntryKind.PAUSED: "pause", EntryKind.RESUMED: "resume", EntryKind.RETIRED: "retire"}

_BASE_STATE_COLS = (
    "tier",
    "status",
    "clean_days",
    "candidate",
    "last_gate_failure",
    "last_failure_reason",
)


class LedgerService:
    """The ledger over one engine. `clock` gives "now" (aware); `policy` is the ladder's rules."""

    def __init__(
        self,
        engine: Engine,
        policy: Policy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy or Policy()
        self.clock = clock or (lambda: datetime.now(UTC))
        self._accumulators = _AccumulatorCache()  # the batch ingest's decoded states

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> LedgerService:
        """The ledger of these settings: engine on the configured database, migrated to head,
        policy in the configured time zone."""
        settings = settings or get_settings()
        engine = make_engine(url, settings=settings)
        migrate(engine)
        return cls(engine, Policy(timezone=settings.timezone), clock)

    # -- helpers --------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the ledger clock must return timezone-aware datetimes")
        return now

    def _policy(self, conn: Connection) -> Policy:
        """The service policy with every Work Order's idle-day rule merged in."""
        breakers = conn.execute(
            sa.select(T_BEHAVIORS.c.name).where(T_BEHAVIORS.c.idle_days == IdlePolicy.BREAK.value)
        ).scalars()
        extra = {n: IdlePolicy.BREAK for n in breakers if n not in self.policy.idle_by_behavior}
        if not extra:
            return self.policy
        return replace(self.policy, idle_by_behavior={**extra, **self.policy.idle_by_behavior})

    def _policy_for(self, row: Any) -> Policy:
        """The policy for one behavior's state row (which carries its Work Order's idle rule);
        cheaper than `_policy` on the per-run path."""
        if row.idle_days != IdlePolicy.BREAK.value or row.behavior in self.policy.idle_by_behavior:
            return self.policy
        by = {**self.policy.idle_by_behavior, row.behavior: IdlePolicy.BREAK}
        return replace(self.policy, idle_by_behavior=by)

    def _behavior(self, conn: Connection, name: str) -> Any:
        row = conn.execute(sa.select(T_BEHAVIORS).where(T_BEHAVIORS.c.name == name)).first()
        if row is None:
            raise UnknownBehaviorError(
                f"no behavior named {name!r} is registered; `cleanday ledger` lists them"
            )
        return row

    def _state_row(self, conn: Connection, name: str) -> Any:
        row = store.state_row(conn, name)
        if row is None:
            self._behavior(conn, name)
            raise UnknownBehaviorError(f"behavior {name!r} has no state row; run ledger rebuild")
        return row

    def _view(self, conn: Connection, name: str, now: datetime) -> BehaviorState:
        row = self._state_row(conn, name)
        acc = ladder.Accumulator.from_json(row.accumulator)
        return ladder.view(acc, self._policy_for(row), now)

    # -- folding --------------------------------------------------------------------------

    def _fold(
        self,
        conn: Connection,
        row: Any,
        pending: Sequence[tuple[int, Entry]],
        policy: Policy,
        now: datetime,
        acc: Any = None,
        flush: Callable[[], None] | None = None,
    ) -> _Fold:
        """Apply entries (seq, Entry) not yet folded into `row`, then view at `now` and work out
        the audit entries and notifications for anything newly concluded. `acc` is the row's
        accumulator when the caller already holds it; `flush` writes anything the caller holds
        in memory before this reads entries back (the batch ingest's refold)."""
        name = row.behavior
        if acc is None:
            acc = ladder.Accumulator.from_json(row.accumulator)
        todo = sorted(
            ((s, e) for s, e in pending if s > row.last_seq), key=lambda p: ladder.fold_order(p[1])
        )
        last_seq = int(row.last_seq)
        refolded = False
        try:
            for s, e in todo:
                acc = ladder.apply(acc, e, policy)
                last_seq = max(last_seq, s)
        except ladder.OutOfOrderEntry:
            # an entry older than what was folded: recompute this behavior from all its entries
            if flush is not None:
                flush()
            acc, last_seq = self._refold(conn, name, policy)
            refolded = True
        state = ladder.view(acc, policy, now)
        fold = _Fold(
            name, acc, state, last_seq, acc_changed=bool(todo) or refolded, applied=len(todo)
        )
        fold.last_change_at = row.last_change_at
        written: set[str] | None = None
        if refolded:
            written = set(
                conn.execute(
                    sa.select(T_ENTRIES.c.key).where(
                        T_ENTRIES.c.behavior == name,
                        T_ENTRIES.c.kind.in_([EntryKind.PROMOTED.value, EntryKind.DEMOTED.value]),
                    )
                ).scalars()
            )
        for change in state.tier_changes:
            key = _change_key(change)
            if written is not None:
                if key in written:
                    continue
            elif row.last_change_at is not None and change.at <= row.last_change_at:
                continue
            self._record_change(fold, change, key)
        if state.status == Status.QUARANTINED and row.status != Status.QUARANTINED.value:
            q_at = state.quarantined_at or now
            fold.derived.append(
                NewEntry(
                    name,
                    EntryKind.QUARANTINED.value,
                    q_at,
                    f"quarantined:{canonical_time(q_at)}",
                    {
                        "reason": f"{policy.quarantine_failures} gate failures in "
                        f"{policy.quarantine_window_days} days at tier A",
                    },
                )
            )
            fold.outbox.append(
                {
                    "channel": "slack",
                    "kind": "quarantine_notice",
                    "dedupe_key": f"quarantine:{name}:{canonical_time(q_at)}",
                    "behavior": name,
                    "payload": {
                        "behavior": name,
                        "at": q_at.isoformat(),
                        "reason": f"{policy.quarantine_failures} gate failures in "
                        f"{policy.quarantine_window_days} days at tier A; schedule paused "
                        "until the operator resumes it",
                        "last_failure": _failure_json(state),
                    },
                }
            )
        return fold

    def _record_change(self, fold: _Fold, change: TierChange, key: str) -> None:
        up = change.to_tier.rank > change.from_tier.rank
        kind = EntryKind.PROMOTED if up else EntryKind.DEMOTED
        data: dict[str, Any] = {
            "from": change.from_tier.value,
            "to": change.to_tier.value,
            "cause": change.cause,
        }
        if change.gate is not None:
            data["gate"] = change.gate
        if change.reason is not None:
            data["reason"] = change.reason
        if change.run_id is not None:
            data["run_id"] = change.run_id
        if change.week is not None:
            data["week"] = change.week.isoformat()
        fold.derived.append(NewEntry(fold.name, kind.value, change.at, key, data))
        payload = {"behavior": fold.name, "at": change.at.isoformat(), **data}
        if up:
            fold.outbox.append(
                {
                    "channel": "slack",
                    "kind": "promotion_notice",
                    "dedupe_key": f"promotion:{fold.name}:{key}",
                    "behavior": fold.name,
                    "payload": payload,
                }
            )
        else:
            fold.outbox.append(
                {
                    "channel": "slack",
                    "kind": "demotion_alert",
                    "dedupe_key": f"demotion:{fold.name}:{key}",
                    "behavior": fold.name,
                    "payload": payload,
                }
            )
        if fold.last_change_at is None or change.at > fold.last_change_at:
            fold.last_change_at = change.at

    def _link_runs(self, outbox: Sequence[dict[str, Any]], conn: Connection) -> None:
        """Give alerts about a run its Temporal workflow id, so the alert can link to the run."""
        need = {
            o["payload"]["run_id"]: o
            for o in outbox
            if o["payload"].get("run_id") and "workflow_id" not in o["payload"]
        }
        if not need:
            return
        found = dict(
            conn.execute(
                sa.select(T_RUNS.c.run_id, T_RUNS.c.workflow_id).where(
                    T_RUNS.c.run_id.in_(list(need))
                )
            ).all()
        )
        for o in outbox:
            run_id = o["payload"].get("run_id")
            if run_id in found and "workflow_id" not in o["payload"]:
                o["payload"]["workflow_id"] = found[run_id]

    def _refold(self, conn: Connection, name: str, policy: Policy) -> tuple[Any, int]:
        entries = store.primitive_entries(conn, name)
        acc = ladder.initial(name)
        for _, e in sorted(entries, key=lambda p: ladder.fold_order(p[1])):
            acc = ladder.apply(acc, e, policy)
        return acc, max((s for s, _ in entries), default=0)

    def _store_folds(
        self, conn: Connection, head: chain.Head, folds: Sequence[_Fold], now: datetime
    ) -> chain.Head:
        derived = [d for f in folds for d in f.derived]
        head, _ = chain.append(conn, head, derived, now)
        self._link_runs([o for f in folds for o in f.outbox], conn)
        store.add_outbox(conn, [o for f in folds for o in f.outbox], now)
        with_acc = [f for f in folds if f.acc_changed]
        without_acc = [f for f in folds if not f.acc_changed]
        store.update_states(
            conn,
            [
                {
                    "behavior": f.name,
                    **store.state_values(f.state),
                    "accumulator": f.acc.to_json(),
                    "last_seq": f.last_seq,
                    "last_change_at": f.last_change_at,
                    "updated_at": now,
                }
                for f in with_acc
            ],
        )
        store.update_states(
            conn,
            [
                {
                    "behavior": f.name,
                    **store.state_values(f.state),
                    "last_change_at": f.last_change_at,
                    "updated_at": now,
                }
                for f in without_acc
            ],
        )
        return head

    def _commit_facts(
        self,
        conn: Connection,
        name: str,
        facts: Sequence[NewEntry],
        now: datetime,
        extra_derived: Sequence[NewEntry] = (),
        extra_outbox: Sequence[dict[str, Any]] = (),
        head: chain.Head | None = None,
        row: Any = None,
    ) -> _Fold:
        """Append primitive facts for one behavior, fold them, and store the consequences.
        `row` is its state row, if the caller already read it in this transaction."""
        if head is None:
            head = chain.lock_head(conn, now)
        head, _ = chain.append(conn, head, facts, now)
        if row is None:
            row = self._state_row(conn, name)
        policy = self._policy_for(row)
        pending = store.primitive_entries_of(conn, name, row.last_seq)
        fold = self._fold(conn, row, pending, policy, now)
        fold.derived[:0] = list(extra_derived)
        outbox = list(extra_outbox)
        if any(d.kind == EntryKind.DEMOTED.value for d in fold.derived):
            # the demotion alert names the gate and the reason: one alert per run, not two
            outbox = [o for o in outbox if o["kind"] != "gate_failure_alert"]
        fold.outbox[:0] = outbox
        self._store_folds(conn, head, [fold], now)
        return fold

    def _row(self, conn: Connection, name: str) -> BehaviorRow:
        query = (
            sa.select(*_row_columns())
            .join(T_BEHAVIORS, T_BEHAVIORS.c.name == T_STATES.c.behavior)
            .where(T_STATES.c.behavior == name)
        )
        r = conn.execute(query).first()
        if r is None:
            self._behavior(conn, name)
            raise UnknownBehaviorError(f"behavior {name!r} has no state row; run ledger rebuild")
        return _behavior_row(r)

    # -- registration ---------------------------------------------------------------------

    def register(self, work_order_path: Path | str) -> RegistrationResult:
        """Register (or re-register) the behavior a Work Order file declares."""
        path = Path(work_order_path)
        wo = load_work_order(path)
        return self.register_work_order(wo, str(path), text=path.read_text(encoding="utf-8"))

    def register_work_order(
        self, wo: WorkOrder, source: str, text: str | None = None
    ) -> RegistrationResult:
        """Register a validated Work Order: new (tier A, clock started), unchanged, or a new
        version. Refuses a key reference already bound to another behavior."""
        now = self._now()
        chash, phash = content_hash(wo), preset_hash(wo)
        with write_connection(self.engine) as conn:
            head = chain.lock_head(conn, now)
            owner = conn.execute(
                sa.select(T_BEHAVIORS.c.name).where(
                    T_BEHAVIORS.c.key_ref == wo.key.ref, T_BEHAVIORS.c.name != wo.name
                )
            ).scalar()
            if owner is not None:
                raise RegistrationError(key_already_bound(source, wo.key.ref, owner))
            existing = conn.execute(
                sa.select(T_BEHAVIORS).where(T_BEHAVIORS.c.name == wo.name)
            ).first()
            content = wo.model_dump(mode="json")
            if existing is not None and existing.content_hash == chash:
                st = self._row(conn, wo.name)
                return RegistrationResult(
                    name=wo.name,
                    status="unchanged",
                    version=existing.version,
                    preset_version=existing.preset_version,
                    tier=st.tier,
                    message=f"{wo.name}: unchanged (version {existing.version}); nothing written",
                )
            if existing is None:
                version, preset_version = 1, 1
                conn.execute(
                    sa.insert(T_BEHAVIORS).values(
                        name=wo.name,
                        version=1,
                        work_order=content,
                        work_order_text=text,
                        content_hash=chash,
                        preset_hash=phash,
                        preset_version=1,
                        key_ref=wo.key.ref,
                        idle_days=wo.idle_days.value,
                        source_path=source,
                        registered_at=now,
                        updated_at=now,
                        status_changed_at=now,
                    )
                )
                acc = ladder.initial(wo.name)
                conn.execute(
                    sa.insert(T_STATES).values(
                        behavior=wo.name,
                        tier=Tier.A.value,
                        status=Status.ACTIVE.value,
                        clean_days=0,
                        candidate=False,
                        accumulator=acc.to_json(),
                        last_seq=0,
                        last_change_at=None,
                        updated_at=now,
                    )
                )
            else:
                version = existing.version + 1
                preset_version = existing.preset_version + (existing.preset_hash != phash)
                conn.execute(
                    sa.update(T_BEHAVIORS)
                    .where(T_BEHAVIORS.c.name == wo.name)
                    .values(
                        version=version,
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
            self._commit_facts(conn, wo.name, [fact], now, head=head)
            st = self._row(conn, wo.name)
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
            tier=st.tier,
            message=msg,
        )

    # -- reading --------------------------------------------------------------------------

    def list_behaviors(self) -> list[BehaviorRow]:
        """Every behavior's cached state (no folding), by name."""
        with self.engine.connect() as conn:
            return _pane_rows(conn, candidates_only=False)

    def get_work_order(self, name: str) -> WorkOrder:
        with self.engine.connect() as conn:
            return WorkOrder.model_validate(self._behavior(conn, name).work_order)

    def state(self, name: str) -> BehaviorState:
        """What the ladder says about `name` right now (from its folded accumulator)."""
        with self.engine.connect() as conn:
            return self._view(conn, name, self._now())

    def items(
        self, name: str, *, status: str | None = None, item_id: str | None = None
    ) -> list[PendingItemRow]:
        """The behavior's proposals and staged items, oldest first (a staged item past its
        expiry reads as expired even before the next write marks it so)."""
        now = self._now()
        query = sa.select(T_PENDING).where(T_PENDING.c.behavior == name)
        if item_id is not None:
            query = query.where(T_PENDING.c.item_id == item_id)
        with self.engine.connect() as conn:
            self._behavior(conn, name)
            rows = conn.execute(query.order_by(T_PENDING.c.id)).all()
        found = [_item_row(r, now) for r in rows]
        return [i for i in found if status is None or i.status == status]

    def item(self, name: str, item_id: str) -> PendingItemRow:
        """One proposal or staged item; DecisionError names it when it does not exist."""
        found = self.items(name, item_id=item_id)
        if not found:
            raise UnknownItemError(f"{name} has no proposal or staged item {item_id!r}")
        return found[0]

    def history(self, name: str) -> list[LedgerEntryRow]:
        with self.engine.connect() as conn:
            self._behavior(conn, name)
            rows = conn.execute(
                sa.select(T_ENTRIES).where(T_ENTRIES.c.behavior == name).order_by(T_ENTRIES.c.seq)
            ).all()
        return [
            LedgerEntryRow(
                seq=r.seq,
                behavior=r.behavior,
                kind=EntryKind(r.kind),
                at=r.at,
                key=r.key,
                data=r.data,
                prev_hash=r.prev_hash,
                hash=r.hash,
                recorded_at=r.recorded_at,
            )
            for r in rows
        ]

    def trailing_medians(self, name: str, days: int = 14) -> Medians:
        """Medians of cost, latency and output size over the behavior's runs in the last days."""
        since = self._now() - timedelta(days=days)
        with self.engine.connect() as conn:
            self._behavior(conn, name)
            rows = conn.execute(
                sa.select(T_RUNS.c.cost_usd, T_RUNS.c.latency_ms, T_RUNS.c.output_size).where(
                    T_RUNS.c.behavior == name, T_RUNS.c.finished_at >= since
                )
            ).all()

        def med(values: Iterable[float | None]) -> float | None:
            vs = [float(v) for v in values if v is not None]
            return statistics.median(vs) if vs else None

        return Medians(
            behavior=name,
            days=days,
            runs=len(rows),
            cost_usd=med(r.cost_usd for r in rows),
            latency_ms=med(r.latency_ms for r in rows),
            output_size=med(r.output_size for r in rows),
        )

    # -- runs -----------------------------------------------------------------------------

    def report_run(self, report: RunReport) -> ReportResult:
        """Record a finished run (idempotent by run_id) and fold it into the ladder; write the
        gate failures, anomalies, demotion/quarantine audit entries and alerts it causes."""
        now = self._now()
        name = report.behavior
        with write_connection(self.engine) as conn:
            head = chain.lock_head(conn, now)
            row = self._state_row(conn, name)
            seen = conn.execute(_Q_RUN_SEEN, {"run_id": report.run_id}).first()
            if seen is not None:
                if seen.behavior != name:
                    raise RegistrationError(
                        f"run {report.run_id} was already reported for behavior "
                        f"{seen.behavior}, not {name}; run IDs are unique"
                    )
                return ReportResult(
                    behavior=name,
                    run_id=report.run_id,
                    recorded=False,
                    message=f"run {report.run_id} already recorded; nothing changed",
                    state=_behavior_row(row),
                )
            tier_before = row.tier
            conn.execute(_INSERT_RUN, _run_row(report, now))
            self._add_items(conn, report, now)
            data = report.model_dump(mode="json", exclude={"behavior", "finished_at", "items"})
            fact = NewEntry(
                name, EntryKind.RUN_REPORTED.value, report.finished_at, f"run:{report.run_id}", data
            )
            derived, outbox = _run_audit(report, tier_before)
            fold = self._commit_facts(conn, name, [fact], now, derived, outbox, head=head, row=row)
            result_row = _fold_row(fold, row, now)
        return ReportResult(
            behavior=name,
            run_id=report.run_id,
            recorded=True,
            message=_report_message(report, result_row, fold),
            state=result_row,
            derived=[d.kind for d in fold.derived],
        )

    def report_runs(self, reports: Sequence[RunReport]) -> list[ReportResult]:
        """Record many finished runs in one transaction under one chain lock: the same entries,
        hashes, states, items and alerts as `report_run` called for each in order, one result
        per report (a run_id already recorded, in the ledger or earlier in the batch, is
        `recorded=False`). Any error writes nothing and names the report's index."""
        if not reports:
            return []
        now = self._now()
        with write_connection(self.engine) as conn:
            head = chain.lock_head(conn, now)
            batch = _Batch(self, conn, head, now)
            batch.prefetch(reports)
            results = []
            for i, report in enumerate(reports):
                try:
                    results.append(batch.add(report))
                except (RegistrationError, UnknownBehaviorError) as exc:
                    raise type(exc)(f"report {i} ({report.run_id}): {exc}") from exc
            batch.finish()
        return results

    def _add_items(self, conn: Connection, report: RunReport, now: datetime) -> None:
        if report.outcome not in ("proposed", "staged"):
            return
        beh = self._behavior(conn, report.behavior)
        kind = "proposal" if report.outcome == "proposed" else "staged"
        items = report.items or [ItemIn(id=report.run_id)]
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
                for it in items
            ],
        )

    # -- permits and the operator's approvals ---------------------------------------------

    def request_permit(self, name: str, run_id: str, *, item_id: str | None = None) -> Permit:
        """Grant an act permit, deciding on the state at this moment; raises PermitDenied.

        At C and Wings the permit only reads the behavior's state, in a read transaction that
        does not wait for writers: it sees every demotion committed before it was asked. At A
        and B it checks the item under the write lock, expiring staged items past their time.
        """
        now = self._now()
        with self.engine.connect() as conn:
            state = self._view(conn, name, now)
        if (permit := self._tier_permit(name, run_id, item_id, state, now)) is not None:
            return permit
        with write_connection(self.engine) as conn:
            state = self._view(conn, name, now)
            if (permit := self._tier_permit(name, run_id, item_id, state, now)) is not None:
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
            self._expire_items(conn, now, name)
            item = conn.execute(
                sa.select(T_PENDING).where(
                    T_PENDING.c.behavior == name, T_PENDING.c.item_id == item_id
                )
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

    @staticmethod
    def _tier_permit(
        name: str, run_id: str, item_id: str | None, state: BehaviorState, now: datetime
    ) -> Permit | None:
        """The permit the state alone decides: denied unless active, granted at C and Wings;
        None at A and B, where the item decides."""
        if state.status != Status.ACTIVE:
            raise PermitDenied(
                f"{name} is {state.status.value}: no act permits until it is resumed"
            )
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

    def _expire_items(self, conn: Connection, now: datetime, name: str | None = None) -> int:
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

    def _pending(
        self, conn: Connection, name: str, kind: str, item_ids: Sequence[str] | None
    ) -> list[str]:
        query = sa.select(T_PENDING.c.item_id, T_PENDING.c.status).where(
            T_PENDING.c.behavior == name, T_PENDING.c.kind == kind
        )
        rows = {r.item_id: r.status for r in conn.execute(query).all()}
        if item_ids is None:
            return sorted(i for i, s in rows.items() if s == "pending")
        for i in item_ids:
            if i not in rows:
                raise DecisionError(f"{name} has no {kind} item {i!r}")
            if rows[i] != "pending":
                raise DecisionError(f"{name}: {kind} item {i!r} is already {rows[i]}")
        return list(item_ids)

    def _set_items(
        self, conn: Connection, name: str, ids: Sequence[str], status: str, by: str, now: datetime
    ) -> None:
        if ids:
            conn.execute(
                sa.update(T_PENDING)
                .where(T_PENDING.c.behavior == name, T_PENDING.c.item_id.in_(list(ids)))
                .values(status=status, decided_at=now, decided_by=by)
            )

    def approve(
        self, name: str, item_ids: Sequence[str] | None = None, by: str = "operator"
    ) -> BatchResult:
        """Sign off a tier-A batch (all pending proposals when item_ids is None)."""
        now = self._now()
        with write_connection(self.engine) as conn:
            self._behavior(conn, name)
            ids = self._pending(conn, name, "proposal", item_ids)
            self._set_items(conn, name, ids, "approved", by, now)
        return BatchResult(behavior=name, action="approved", items=list(ids))

    def reject(
        self,
        name: str,
        item_ids: Sequence[str] | None = None,
        reason: str = "",
        by: str = "operator",
    ) -> BatchResult:
        """Reject proposals; a rejection is an operator override and resets the clock."""
        now = self._now()
        with write_connection(self.engine) as conn:
            head = chain.lock_head(conn, now)
            self._behavior(conn, name)
            ids = self._pending(conn, name, "proposal", item_ids)
            if ids:
                self._set_items(conn, name, ids, "rejected", by, now)
                fact = NewEntry(
                    name,
                    EntryKind.OVERRIDE.value,
                    now,
                    f"override:{uuid.uuid4().hex}",
                    {"reason": reason or "proposals rejected", "kind": "rejected", "items": ids},
                )
                self._commit_facts(conn, name, [fact], now, head=head)
        return BatchResult(behavior=name, action="rejected", items=list(ids))

    def release(self, name: str, item_id: str, by: str = "operator") -> BatchResult:
        """Release one tier-B staged item so that it may act."""
        now = self._now()
        with write_connection(self.engine) as conn:
            self._behavior(conn, name)
            self._expire_items(conn, now, name)
            ids = self._pending(conn, name, "staged", [item_id])
            self._set_items(conn, name, ids, "released", by, now)
        return BatchResult(behavior=name, action="released", items=[item_id])

    # -- decisions, overrides, status -----------------------------------------------------

    def decide(self, name: str, week: date, decision: Decision, by: str = "operator") -> None:
        """Record Promote/Hold for a candidate of that week's review, before the review closes."""
        now = self._now()
        decision = Decision(decision)
        tz = self.policy.timezone
        if week.weekday() != 6:
            raise DecisionError(f"week {week} is not a Sunday; a review is named by its Sunday")
        close_at = clock.sunday_close_at(week, tz)
        if now >= close_at:
            raise DecisionError(f"the review of {week} has closed; decide in next Sunday's review")
        current = clock.review_sunday(clock.local_date(now, tz))
        if current != week:
            raise DecisionError(
                f"the review of {week} is not open; this week's review is {current}"
            )
        with write_connection(self.engine) as conn:
            head = chain.lock_head(conn, now)
            if store.job_result(conn, f"sunday_close:{week}") is not None:
                raise DecisionError(f"the review of {week} has closed")
            state = self._view(conn, name, now)
            if not state.candidate:
                raise DecisionError(
                    f"{name} is not a candidate in the review of {week} (tier "
                    f"{state.tier.value}, {state.clean_days} clean days, {state.status.value})"
                )
            fact = NewEntry(
                name,
                EntryKind.DECISION.value,
                now,
                f"decision:{week}:{uuid.uuid4().hex}",
                {"week": week.isoformat(), "decision": decision.value, "by": by},
            )
            self._commit_facts(conn, name, [fact], now, head=head)

    def override(
        self,
        name: str,
        reason: str,
        kind: str = "manual",
        tier: Tier | None = None,
        run_id: str | None = None,
    ) -> BehaviorRow:
        """Record an operator override (resets the clock); with `tier`, force the tier."""
        now = self._now()
        data: dict[str, Any] = {"reason": reason, "kind": kind}
        if tier is not None:
            data["kind"] = "forced_tier"
            data["tier"] = Tier(tier).value
        if run_id is not None:
            data["run_id"] = run_id
        with write_connection(self.engine) as conn:
            head = chain.lock_head(conn, now)
            self._behavior(conn, name)
            fact = NewEntry(
                name, EntryKind.OVERRIDE.value, now, f"override:{uuid.uuid4().hex}", data
            )
            self._commit_facts(conn, name, [fact], now, head=head)
            return self._row(conn, name)

    def _status_change(
        self, name: str, kind: EntryKind, allowed: set[Status], by: str, reason: str
    ) -> BehaviorRow:
        now = self._now()
        with write_connection(self.engine) as conn:
            head = chain.lock_head(conn, now)
            state = self._view(conn, name, now)
            if state.status not in allowed:
                raise DecisionError(f"cannot {_VERBS[kind]} {name}: it is {state.status.value}")
            data = {"by": by, **({"reason": reason} if reason else {})}
            fact = NewEntry(name, kind.value, now, f"{kind.value}:{uuid.uuid4().hex}", data)
            self._commit_facts(conn, name, [fact], now, head=head)
            conn.execute(
                sa.update(T_BEHAVIORS)
                .where(T_BEHAVIORS.c.name == name)
                .values(status_changed_at=now)
            )
            return self._row(conn, name)

    def pause(self, name: str, by: str = "operator", reason: str = "") -> BehaviorRow:
        return self._status_change(name, EntryKind.PAUSED, {Status.ACTIVE}, by, reason)

    def resume(self, name: str, by: str = "operator", reason: str = "") -> BehaviorRow:
        return self._status_change(
            name, EntryKind.RESUMED, {Status.PAUSED, Status.QUARANTINED}, by, reason
        )

    def retire(self, name: str, by: str = "operator", reason: str = "") -> BehaviorRow:
        return self._status_change(
            name,
            EntryKind.RETIRED,
            {Status.ACTIVE, Status.PAUSED, Status.QUARANTINED},
            by,
            reason,
        )

    # -- reviews --------------------------------------------------------------------------

    def candidates(self, week: date | None = None) -> list[BehaviorRow]:
        """Active candidates from the cached state (no folding); with `week`, each row carries
        the latest decision recorded for that week's review."""
        with self.engine.connect() as conn:
            decisions = self._decisions(conn, week) if week is not None else {}
            return _pane_rows(conn, candidates_only=True, decisions=decisions)

    def _decisions(self, conn: Connection, week: date) -> dict[str, Decision]:
        """Latest decision per behavior for the review of `week` (the Sunday)."""
        start, _ = clock.day_bounds(week - timedelta(days=6), self.policy.timezone)
        end = clock.sunday_close_at(week, self.policy.timezone)
        rows = conn.execute(
            sa.select(T_ENTRIES.c.behavior, T_ENTRIES.c.data)
            .where(
                T_ENTRIES.c.kind == EntryKind.DECISION.value,
                T_ENTRIES.c.at >= start,
                T_ENTRIES.c.at <= end,
            )
            .order_by(T_ENTRIES.c.seq)
        ).all()
        out: dict[str, Decision] = {}
        for r in rows:
            if r.data.get("week") == week.isoformat():
                out[r.behavior] = Decision(r.data["decision"])
        return out

    def post_review(self, sunday: date) -> list[BehaviorRow]:
        """Sunday morning: queue the review rows (Notion) and the summary (Slack) for this
        week's candidates. Idempotent by week."""
        now = self._now()
        job = f"review_post:{sunday}"
        rows = self.candidates(sunday)
        with write_connection(self.engine) as conn:
            chain.lock_head(conn, now)
            if store.job_result(conn, job) is not None:
                return rows
            items: list[dict[str, Any]] = [
                {
                    "channel": "notion",
                    "kind": "review_row",
                    "dedupe_key": f"review_row:{sunday}:{r.name}",
                    "behavior": r.name,
                    "payload": {
                        "week": sunday.isoformat(),
                        "behavior": r.name,
                        "from_tier": r.tier.value,
                        "to_tier": r.tier.up().value,
                        "clean_days": r.clean_days,
                    },
                }
                for r in rows
            ]
            items.append(
                {
                    "channel": "slack",
                    "kind": "review_summary",
                    "dedupe_key": f"review_summary:{sunday}",
                    "behavior": None,
                    "payload": {
                        "week": sunday.isoformat(),
                        "candidates": [
                            {"behavior": r.name, "tier": r.tier.value, "clean_days": r.clean_days}
                            for r in rows
                        ],
                    },
                }
            )
            n = store.add_outbox(conn, items, now)
            store.record_job(conn, job, now, self._now(), {"candidates": len(rows), "outbox": n})
        return rows

    # -- clocks ---------------------------------------------------------------------------

    def close_day(self, d: date) -> DayCloseResult:
        """Close local day `d`: fold what is not yet folded and refresh every behavior that had
        entries that day (plus idle-breaking behaviors). Costs in proportion to that day's
        entries; idempotent by date."""
        t0 = time.perf_counter()
        now = self._now()
        job = f"day_close:{d}"
        start, end = clock.day_bounds(d, self.policy.timezone)
        if now < end:
            raise DecisionError(f"day {d} is not over yet in {self.policy.timezone}")
        with write_connection(self.engine) as conn:
            head = chain.lock_head(conn, now)
            done = store.job_result(conn, job)
            if done is not None:
                return DayCloseResult.model_validate({**done, "already_closed": True})
            policy = self._policy(conn)
            pending = store.primitive_entries_after(conn, store.folded_seq(conn), head.seq)
            touched = store.behaviors_with_entries_between(conn, start, end) | set(pending)
            if policy.idle == IdlePolicy.BREAK:
                touched |= set(
                    conn.execute(sa.select(T_STATES.c.behavior)).scalars()
                )  # every idle day matters to every behavior
            else:
                touched |= {n for n, p in policy.idle_by_behavior.items() if p == IdlePolicy.BREAK}
            rows = store.state_rows(conn, sorted(touched))
            folds = [self._fold(conn, rows[n], pending.get(n, []), policy, now) for n in rows]
            head = self._store_folds(conn, head, folds, now)
            store.set_folded_seq(conn, head.seq)
            expired = self._expire_items(conn, now)
            result = DayCloseResult(
                date=d,
                already_closed=False,
                behaviors=len(folds),
                entries_folded=sum(f.applied for f in folds),
                demoted=sorted(
                    {f.name for f in folds for x in f.derived if x.kind == EntryKind.DEMOTED}
                ),
                quarantined=sorted(
                    {f.name for f in folds for x in f.derived if x.kind == EntryKind.QUARANTINED}
                ),
                expired_items=expired,
                seconds=round(time.perf_counter() - t0, 4),
            )
            store.record_job(conn, job, now, self._now(), result.model_dump(mode="json"))
        return result

    def close_sunday(self, sunday: date) -> SundayCloseResult:
        """Close the review of `sunday`: each candidate marked Promote that is still a candidate
        moves up one tier (the ladder decides); write `promoted` entries and notices.
        Idempotent by week."""
        now = self._now()
        if sunday.weekday() != 6:
            raise DecisionError(f"{sunday} is not a Sunday; a review is named by its Sunday")
        job = f"sunday_close:{sunday}"
        if now < clock.sunday_close_at(sunday, self.policy.timezone):
            raise DecisionError(f"the review of {sunday} closes at the end of that Sunday")
        with write_connection(self.engine) as conn:
            head = chain.lock_head(conn, now)
            done = store.job_result(conn, job)
            if done is not None:
                return SundayCloseResult.model_validate({**done, "already_closed": True})
            policy = self._policy(conn)
            decisions = self._decisions(conn, sunday)
            rows = store.state_rows(conn, sorted(decisions))
            folds = []
            for n, row in rows.items():
                pending = store.primitive_entries_of(conn, n, row.last_seq)
                folds.append(self._fold(conn, row, pending, policy, now))
            promoted = sorted(
                {
                    f.name
                    for f in folds
                    for x in f.derived
                    if x.kind == EntryKind.PROMOTED and x.data.get("week") == sunday.isoformat()
                }
            )
            held = sorted(set(decisions) - set(promoted))
            summary = {
                "channel": "slack",
                "kind": "review_closed",
                "dedupe_key": f"review_closed:{sunday}",
                "behavior": None,
                "payload": {"week": sunday.isoformat(), "promoted": promoted, "held": held},
            }
            if folds:
                folds[0].outbox.append(summary)
                head = self._store_folds(conn, head, folds, now)
                n_out = sum(len(f.outbox) for f in folds)
            else:
                n_out = store.add_outbox(conn, [summary], now)
            result = SundayCloseResult(
                week=sunday, already_closed=False, promoted=promoted, held=held, outbox=n_out
            )
            store.record_job(conn, job, now, self._now(), result.model_dump(mode="json"))
        return result

    # -- integrity ------------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        """Check the hash chain; every edited, inserted or deleted entry is named."""
        with self.engine.connect() as conn:
            return chain.verify(conn)

    def _fold_all(
        self, conn: Connection, policy_for: Callable[[str], Policy]
    ) -> Iterable[tuple[str, Any, int, int]]:
        """(name, accumulator, last primitive seq, entries) for every behavior, from scratch."""
        names = list(conn.execute(sa.select(T_BEHAVIORS.c.name).order_by(T_BEHAVIORS.c.name)))
        for (name,) in names:
            entries = store.primitive_entries(conn, name)
            policy = policy_for(name)
            acc = ladder.initial(name)
            for _, e in sorted(entries, key=lambda p: ladder.fold_order(p[1])):
                acc = ladder.apply(acc, e, policy)
            yield name, acc, max((s for s, _ in entries), default=0), len(entries)

    def rebuild(self) -> RebuildResult:
        """Recompute every materialized state from the entries, fix it, report differences."""
        now = self._now()
        diffs: list[StateDifference] = []
        total = count = 0
        with write_connection(self.engine) as conn:
            chain.lock_head(conn, now)
            policy = self._policy(conn)
            stored = store.state_rows(conn)
            updates = []
            for name, acc, last_seq, n in self._fold_all(conn, lambda _n: policy):
                count += 1
                total += n
                state = ladder.view(acc, policy, now)
                values = store.state_values(state)
                old = stored.get(name)
                if old is None:
                    diffs.append(
                        StateDifference(behavior=name, field="row", stored=None, rebuilt="created")
                    )
                    conn.execute(
                        sa.insert(T_STATES).values(
                            behavior=name,
                            **values,
                            accumulator=acc.to_json(),
                            last_seq=last_seq,
                            last_change_at=None,
                            updated_at=now,
                        )
                    )
                    continue
                for col in _BASE_STATE_COLS:
                    a, b = getattr(old, col), values[col]
                    if a != b:
                        diffs.append(
                            StateDifference(
                                behavior=name,
                                field=col,
                                stored=_jsonable(a),
                                rebuilt=_jsonable(b),
                            )
                        )
                updates.append(
                    {
                        "behavior": name,
                        **values,
                        "accumulator": acc.to_json(),
                        "last_seq": last_seq,
                        "updated_at": now,
                    }
                )
            store.update_states(conn, updates)
        return RebuildResult(behaviors=count, entries=total, differences=diffs)

    def replay(self, policy: Policy) -> list[BehaviorRow]:
        """Every behavior's state today under another policy; nothing is written."""
        now = self._now()
        out = []
        with self.engine.connect() as conn:
            meta = {
                r.name: r
                for r in conn.execute(
                    sa.select(
                        T_BEHAVIORS.c.name, T_BEHAVIORS.c.version, T_BEHAVIORS.c.preset_version
                    )
                ).all()
            }
            for name, acc, _, _ in self._fold_all(conn, lambda _n: policy):
                state = ladder.view(acc, policy, now)
                lf = state.last_failure
                out.append(
                    BehaviorRow(
                        name=name,
                        tier=state.tier,
                        status=state.status,
                        clean_days=state.clean_days,
                        candidate=state.candidate,
                        last_gate_failure=lf.on if lf else None,
                        last_failure_gate=lf.gate if lf else None,
                        last_failure_reason=lf.reason if lf else None,
                        tier_since=state.tier_since,
                        version=meta[name].version,
                        preset_version=meta[name].preset_version,
                    )
                )
        return out


# ---------------------------------------------------------------------------------------------


def _jsonable(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date | datetime) else v


def _change_key(change: TierChange) -> str:
    return f"tier:{canonical_time(change.at)}:{change.from_tier.value}>{change.to_tier.value}"


def _failure_json(state: BehaviorState) -> dict[str, Any] | None:
    lf = state.last_failure
    if lf is None:
        return None
    return {"on": lf.on.isoformat(), "gate": lf.gate, "reason": lf.reason, "run_id": lf.run_id}


def _run_audit(report: RunReport, tier_before: str) -> tuple[list[NewEntry], list[dict[str, Any]]]:
    """The gate_failed / anomaly audit entries and the Notion gate-failure rows of one run."""
    derived: list[NewEntry] = []
    outbox: list[dict[str, Any]] = []
    at = report.finished_at
    for g in report.gates:
        if g.passed:
            continue
        data = {"run_id": report.run_id, "gate": g.name, "reason": g.reason, "tier": tier_before}
        derived.append(
            NewEntry(
                report.behavior,
                EntryKind.GATE_FAILED.value,
                at,
                f"gate_failed:{report.run_id}:{g.name}",
                data,
            )
        )
        outbox.append(
            {
                "channel": "notion",
                "kind": "gate_failure_row",
                "dedupe_key": f"gate_failure:{report.behavior}:{report.run_id}:{g.name}",
                "behavior": report.behavior,
                "payload": {
                    "behavior": report.behavior,
                    "date": at.isoformat(),
                    "workflow_id": report.workflow_id,
                    **data,
                },
            }
        )
    failed = [g for g in report.gates if not g.passed]
    if failed:
        # every failing run is alerted; at A (no lower tier) this is the only alert there is
        outbox.append(
            {
                "channel": "slack",
                "kind": "gate_failure_alert",
                "dedupe_key": f"gate_alert:{report.behavior}:{report.run_id}",
                "behavior": report.behavior,
                "payload": {
                    "behavior": report.behavior,
                    "run_id": report.run_id,
                    "workflow_id": report.workflow_id,
                    "tier": tier_before,
                    "gates": [{"name": g.name, "reason": g.reason} for g in failed],
                },
            }
        )
    for a in report.anomalies:
        derived.append(
            NewEntry(
                report.behavior,
                EntryKind.ANOMALY.value,
                at,
                f"anomaly:{report.run_id}:{a.name}",
                {"run_id": report.run_id, "name": a.name, "detail": a.detail},
            )
        )
    return derived, outbox


class _AccumulatorCache:
    """Decoded accumulators between batches, keyed by the exact JSON text they were stored as.

    The batch ingest reads each behavior's accumulator as its stored text; when that text is
    the one this process last wrote (or decoded) for the behavior, the decoded accumulator is
    reused instead of parsing it again. Because the key is the stored text itself, whoever
    else writes a state row (the day close, an override, another process) invalidates the
    entry simply by storing different text, and an entry for a transaction that rolled back
    is never matched. Accumulators are immutable snapshots (`ladder.apply` copies), so
    sharing one between batches is safe.
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._by_behavior: dict[str, tuple[str, ladder.Accumulator]] = {}

    def decode(self, name: str, text: str) -> ladder.Accumulator:
        hit = self._by_behavior.get(name)
        if hit is not None and hit[0] == text:
            return hit[1]
        acc = ladder.Accumulator.from_json(json.loads(text))
        self._remember(name, text, acc)
        return acc

    def encode(self, name: str, acc: ladder.Accumulator) -> store.JsonText:
        text = store.JsonText(json.dumps(acc.to_json()))
        self._remember(name, text, acc)
        return text

    def _remember(self, name: str, text: str, acc: ladder.Accumulator) -> None:
        if len(self._by_behavior) >= self.max_entries and name not in self._by_behavior:
            self._by_behavior.clear()  # more behaviors than fit: start over, simply
        self._by_behavior[name] = (text, acc)


@dataclass
class _Mem:
    """A behavior's state row as the batch ingest holds it between reports of one batch (the
    attributes `_fold` and `_fold_row` read), with its accumulator kept decoded."""

    behavior: str
    acc: Any
    last_seq: int
    last_change_at: datetime | None
    status: str
    tier: str
    idle_days: str
    version: int
    preset_version: int
    row: Any  # the state row read, for its Pane of Glass row until this batch folds a report
    view: BehaviorRow | None = None  # the row after this batch's last fold
    fold: _Fold | None = None  # the last fold of this batch, stored at the end

    def current_view(self) -> BehaviorRow:
        return self.view if self.view is not None else _behavior_row(self.row)


class _Batch:
    """One `report_runs` transaction: reports are folded one by one in memory, exactly as
    `report_run` would in this order, and written with one executemany per table."""

    def __init__(self, ledger: LedgerService, conn: Connection, head: chain.Head, now: datetime):
        self.ledger, self.conn, self.head, self.now = ledger, conn, head, now
        self.mem: dict[str, _Mem] = {}
        self.seen: dict[str, str] = {}  # run_id -> behavior, for run_ids met in this batch
        self.runs: list[dict[str, Any]] = []
        self.entries: list[dict[str, Any]] = []  # linked, not yet inserted
        self.outbox: list[dict[str, Any]] = []
        self.with_items: list[RunReport] = []
        self.prefetched = False  # once true, `seen` holds every recorded run ID of the batch

    def prefetch(self, reports: Sequence[RunReport]) -> None:
        """Read the batch's state rows and already recorded run IDs with a few queries."""
        rows = store.state_rows(self.conn, sorted({r.behavior for r in reports}), acc_text=True)
        for row in rows.values():
            self._state(row.behavior, row)
        run_ids = sorted({r.run_id for r in reports})
        for part in store.chunks(run_ids, 1000):
            found = self.conn.execute(_Q_RUNS_SEEN, {"run_ids": part}).all()
            self.seen.update({str(f.run_id): str(f.behavior) for f in found})
        self.prefetched = True

    def _state(self, name: str, row: Any = None) -> _Mem:
        m = self.mem.get(name)
        if m is None:
            if row is None:
                row = self.ledger._state_row(self.conn, name)
            if hasattr(row, "accumulator_text"):
                acc = self.ledger._accumulators.decode(name, row.accumulator_text)
            else:
                acc = ladder.Accumulator.from_json(row.accumulator)
            m = _Mem(
                name,
                acc,
                int(row.last_seq),
                row.last_change_at,
                row.status,
                row.tier,
                row.idle_days,
                row.version,
                row.preset_version,
                row,
            )
            self.mem[name] = m
        return m

    def _seen(self, run_id: str) -> str | None:
        if run_id in self.seen or self.prefetched:
            return self.seen.get(run_id)
        found = self.conn.execute(_Q_RUN_SEEN, {"run_id": run_id}).first()
        return None if found is None else str(found.behavior)

    def flush(self) -> None:
        """Insert what is held so far (the refold reads a behavior's entries back)."""
        if self.runs:
            store.raw_insert(self.conn, T_RUNS, self.runs)
            self.runs = []
        if self.entries:
            store.raw_insert(self.conn, T_ENTRIES, self.entries)
            self.entries = []

    def _link(self, entries: Sequence[NewEntry]) -> list[dict[str, Any]]:
        self.head, rows = chain.link(self.head, entries, self.now)
        self.entries.extend(rows)
        return rows

    def add(self, report: RunReport) -> ReportResult:
        name, now = report.behavior, self.now
        m = self._state(name)
        prior = self._seen(report.run_id)
        if prior is not None:
            if prior != name:
                raise RegistrationError(
                    f"run {report.run_id} was already reported for behavior "
                    f"{prior}, not {name}; run IDs are unique"
                )
            return ReportResult(
                behavior=name,
                run_id=report.run_id,
                recorded=False,
                message=f"run {report.run_id} already recorded; nothing changed",
                state=m.current_view(),
            )
        self.seen[report.run_id] = name
        self.runs.append(_run_row(report, now))
        if report.outcome in ("proposed", "staged"):
            self.with_items.append(report)
        data = report.model_dump(mode="json", exclude={"behavior", "finished_at", "items"})
        fact = NewEntry(
            name, EntryKind.RUN_REPORTED.value, report.finished_at, f"run:{report.run_id}", data
        )
        derived, outbox = _run_audit(report, m.tier)
        (fact_row,) = self._link([fact])
        # the entry as `report_run` would read it back: UTC, JSON data
        at = fact.at.astimezone(UTC)
        pending = [(fact_row["seq"], Entry(name, EntryKind.RUN_REPORTED, at, fact.key, data))]
        policy = self.ledger._policy_for(m)
        fold = self.ledger._fold(self.conn, m, pending, policy, now, acc=m.acc, flush=self.flush)
        fold.derived[:0] = derived
        if any(d.kind == EntryKind.DEMOTED.value for d in fold.derived):
            outbox = [o for o in outbox if o["kind"] != "gate_failure_alert"]
        fold.outbox[:0] = outbox
        self._link(fold.derived)
        self.outbox.extend(fold.outbox)
        view = _fold_row(fold, m, now)
        m.acc, m.last_seq, m.last_change_at = fold.acc, fold.last_seq, fold.last_change_at
        m.status, m.tier, m.view, m.fold = (
            fold.state.status.value,
            fold.state.tier.value,
            view,
            fold,
        )
        return ReportResult(
            behavior=name,
            run_id=report.run_id,
            recorded=True,
            message=_report_message(report, view, fold),
            state=view,
            derived=[d.kind for d in fold.derived],
        )

    def finish(self) -> None:
        conn, now = self.conn, self.now
        self.flush()
        for report in self.with_items:
            self.ledger._add_items(conn, report, now)
        chain.set_head(conn, self.head, now)
        self.ledger._link_runs(self.outbox, conn)
        # one report at a time, a later alert with an earlier one's key would find it queued
        first = {o["dedupe_key"]: o for o in reversed(self.outbox)}
        store.add_outbox(conn, [o for o in self.outbox if first[o["dedupe_key"]] is o], now)
        encode = self.ledger._accumulators.encode
        store.update_states(
            conn,
            [
                {
                    "behavior": m.behavior,
                    **store.state_values(m.fold.state),
                    "accumulator": encode(m.behavior, m.acc),
                    "last_seq": m.last_seq,
                    "last_change_at": m.last_change_at,
                    "updated_at": now,
                }
                for m in self.mem.values()
                if m.fold is not None
            ],
        )


def _report_message(report: RunReport, row: BehaviorRow, fold: _Fold) -> str:
    kinds = [d.kind for d in fold.derived]
    parts = [f"run {report.run_id} recorded"]
    if EntryKind.DEMOTED.value in kinds:
        parts.append(f"{report.behavior} demoted to tier {row.tier.value}")
    if EntryKind.QUARANTINED.value in kinds:
        parts.append(f"{report.behavior} quarantined")
    return "; ".join(parts)


_Q_RUN_SEEN = sa.select(T_RUNS.c.behavior).where(T_RUNS.c.run_id == sa.bindparam("run_id"))
_Q_RUNS_SEEN = sa.select(T_RUNS.c.run_id, T_RUNS.c.behavior).where(
    T_RUNS.c.run_id.in_(sa.bindparam("run_ids", expanding=True))
)
_INSERT_RUN = sa.insert(T_RUNS)


def _run_row(report: RunReport, now: datetime) -> dict[str, Any]:
    """The `runs` table row of a report (the one place its columns are listed)."""
    return dict(
        run_id=report.run_id,
        workflow_id=report.workflow_id,
        behavior=report.behavior,
        started_at=report.started_at,
        finished_at=report.finished_at,
        outcome=report.outcome,
        cost_usd=report.cost_usd,
        tokens_in=report.tokens_in,
        tokens_out=report.tokens_out,
        model=report.model,
        transport=report.transport,
        latency_ms=report.latency_ms,
        output_size=report.output_size,
        summary=report.summary,
        reported_at=now,
    )


def _fold_row(fold: _Fold, row: Any, now: datetime) -> BehaviorRow:
    """The Pane of Glass row a fold just stored, without reading it back."""
    st = fold.state
    lf = st.last_failure
    return _pane_row(
        name=fold.name,
        tier=st.tier,
        status=st.status,
        clean_days=st.clean_days,
        candidate=st.candidate,
        last_gate_failure=lf.on if lf else None,
        last_failure_gate=lf.gate if lf else None,
        last_failure_reason=lf.reason if lf else None,
        tier_since=st.tier_since,
        version=row.version,
        preset_version=row.preset_version,
        updated_at=now,
        decision=None,
    )


_PANE_SQL = (
    "SELECT s.behavior, s.tier, s.status, s.clean_days, s.candidate, s.last_gate_failure, "
    "s.last_failure_gate, s.last_failure_reason, s.tier_since, s.updated_at, b.version, "
    "b.preset_version FROM behavior_states s JOIN behaviors b ON b.name = s.behavior"
)
_TIERS = {t.value: t for t in Tier}
_STATUSES = {st.value: st for st in Status}


def _pane_rows(
    conn: Connection, *, candidates_only: bool, decisions: dict[str, Decision] | None = None
) -> list[BehaviorRow]:
    """Pane of Glass rows straight from the driver: listing 10,000 behaviors (or as many
    candidates) is dominated by per-row work, so it is kept to the conversions it needs."""
    sql = _PANE_SQL
    if candidates_only:
        sql += " WHERE s.candidate = " + ("1" if is_sqlite(conn) else "true")
        sql += " AND s.status = 'active'"
    sql += " ORDER BY s.behavior"
    decisions = decisions or {}

    def ts(v: Any) -> datetime | None:
        if v is None:
            return None
        if isinstance(v, str):  # SQLite keeps naive UTC text
            v = datetime.fromisoformat(v)
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    def day(v: Any) -> date | None:
        return date.fromisoformat(v) if isinstance(v, str) else v

    return [
        _pane_row(
            name=r[0],
            tier=_TIERS[r[1]],
            status=_STATUSES[r[2]],
            clean_days=r[3],
            candidate=bool(r[4]),
            last_gate_failure=day(r[5]),
            last_failure_gate=r[6],
            last_failure_reason=r[7],
            tier_since=ts(r[8]),
            updated_at=ts(r[9]),
            version=r[10],
            preset_version=r[11],
            decision=decisions.get(r[0]),
        )
        for r in conn.exec_driver_sql(sql)
    ]


def _row_columns() -> list[Any]:
    """What a Pane of Glass row needs (never the accumulator, which only the fold reads)."""
    s = T_STATES.c
    return [
        s.behavior,
        s.tier,
        s.status,
        s.clean_days,
        s.candidate,
        s.last_gate_failure,
        s.last_failure_gate,
        s.last_failure_reason,
        s.tier_since,
        s.updated_at,
        T_BEHAVIORS.c.version,
        T_BEHAVIORS.c.preset_version,
    ]


def _behavior_row(r: Any) -> BehaviorRow:
    # built from typed columns, so validation would only repeat what the schema guarantees;
    # skipping it keeps listing 10,000 behaviors cheap
    return _pane_row(
        name=r.behavior,
        tier=Tier(r.tier),
        status=Status(r.status),
        clean_days=r.clean_days,
        candidate=bool(r.candidate),
        last_gate_failure=r.last_gate_failure,
        last_failure_gate=r.last_failure_gate,
        last_failure_reason=r.last_failure_reason,
        tier_since=r.tier_since,
        version=r.version,
        preset_version=r.preset_version,
        updated_at=r.updated_at,
        decision=None,
    )


def _item_row(r: Any, now: datetime) -> PendingItemRow:
    expired = r.status == "pending" and r.expires_at is not None and r.expires_at <= now
    return PendingItemRow(
        behavior=r.behavior,
        item_id=r.item_id,
        run_id=r.run_id,
        kind=r.kind,
        status="expired" if expired else r.status,
        payload=dict(r.payload or {}),
        created_at=r.created_at,
        expires_at=r.expires_at,
        decided_at=r.decided_at,
        decided_by=r.decided_by,
    )
