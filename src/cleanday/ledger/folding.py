"""Folding new entries into a behavior's materialized state, and saying what the ladder newly
concluded: the derived audit entries (promoted, demoted, quarantined) and their notices.

The ladder decides (`ladder.apply`, `ladder.fold` when an entry arrives out of order); this
module only keeps the accumulator, the chain position it was folded to, which tier changes
already have their entry, and which of those no longer hold (a late entry took one back: its
`reversed:` entry undoes it, append-only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday import ladder
from cleanday.chain import NewEntry, canonical_time
from cleanday.domain import BehaviorState, Entry, EntryKind, Policy, Status, Tier, TierChange
from cleanday.ledger import store
from cleanday.ledger.core import LedgerCore, state_row
from cleanday.ledger.rows import state_values
from cleanday.ledger.unit_of_work import UnitOfWork
from cleanday.models import T_ENTRIES, T_RUNS
from cleanday.notices import (
    Demoted,
    Notice,
    Promoted,
    Quarantined,
    StateChanged,
    TierChanged,
)


@dataclass
class Fold:
    """What folding new entries into one behavior's state produced, before it is stored."""

    name: str
    acc: ladder.Accumulator
    state: BehaviorState
    last_seq: int
    derived: list[NewEntry] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    last_change_at: datetime | None = None
    acc_changed: bool = True
    applied: int = 0  # entries folded in now

    def demoted_by(self, run_id: str) -> TierChanged | None:
        return next(
            (n for n in self.notices if isinstance(n, Demoted) and n.run_id == run_id), None
        )


def refold(conn: Connection, name: str, policy: Policy) -> tuple[ladder.Accumulator, int, int]:
    """(accumulator, last primitive seq, entries) of one behavior, folded from all its entries."""
    entries = store.primitive_entries(conn, name)
    acc = ladder.fold(name, (e for _, e in entries), policy)
    return acc, max((s for s, _ in entries), default=0), len(entries)


def fold(
    conn: Connection,
    row: Any,
    pending: Sequence[tuple[int, Entry]],
    policy: Policy,
    now: datetime,
    acc: ladder.Accumulator | None = None,
    flush: Callable[[], None] | None = None,
) -> Fold:
    """Apply entries (seq, Entry) not yet folded into `row`, then view at `now` and work out
    the audit entries and notices for anything newly concluded. `acc` is the row's accumulator
    when the caller already holds it; `flush` writes anything the caller holds in memory before
    this reads entries back (a refold)."""
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
        acc, last_seq, _ = refold(conn, name, policy)
        refolded = True
    state = ladder.view(acc, policy, now)
    out = Fold(name, acc, state, last_seq, acc_changed=bool(todo) or refolded, applied=len(todo))
    out.last_change_at = row.last_change_at
    written: set[str] | None = None
    latest = max((c.at for c in state.tier_changes), default=None)
    # a tier change recorded later than any the ladder now concludes: one no longer holds
    undone = row.last_change_at is not None and (latest is None or latest < row.last_change_at)
    if refolded or undone:
        changes = _written_changes(conn, name)
        written = {key for key, _ in changes}
        if _record_reversals(out, changes, state, todo, now):
            out.last_change_at = latest
    for change in state.tier_changes:
        key = change_key(change)
        if written is not None:
            if key in written:
                continue
        elif row.last_change_at is not None and change.at <= row.last_change_at:
            continue
        _record_change(out, change, key)
    if state.status == Status.QUARANTINED and row.status != Status.QUARANTINED.value:
        q_at = state.quarantined_at or now
        reason = (
            f"{policy.quarantine_failures} gate failures in "
            f"{policy.quarantine_window_days} days at tier A"
        )
        key = f"quarantined:{canonical_time(q_at)}"
        out.derived.append(
            NewEntry(name, EntryKind.QUARANTINED.value, q_at, key, {"reason": reason})
        )
        out.notices.append(Quarantined(name, q_at, reason, state.last_failure))
    return out


def _written_changes(conn: Connection, name: str) -> list[tuple[str, dict[str, Any]]]:
    """(key, data) of the behavior's promoted and demoted entries, in chain order."""
    query = (
        sa.select(T_ENTRIES.c.key, T_ENTRIES.c.data)
        .where(
            T_ENTRIES.c.behavior == name,
            T_ENTRIES.c.kind.in_([EntryKind.PROMOTED.value, EntryKind.DEMOTED.value]),
        )
        .order_by(T_ENTRIES.c.seq)
    )
    return [(str(k), dict(d or {})) for k, d in conn.execute(query).all()]


def _record_reversals(
    out: Fold,
    written: Sequence[tuple[str, dict[str, Any]]],
    state: BehaviorState,
    todo: Sequence[tuple[int, Entry]],
    now: datetime,
) -> int:
    """A fold can conclude that a tier change already in the chain never happened (a late
    gate failure from before a Sunday close takes the candidacy away): the chain is
    append-only, so the change is undone by an entry of its own, latest first, at `now`, when
    the fold concluded it, and it alerts like any other change of tier. Returns how many."""
    concluded = {change_key(c) for c in state.tier_changes}
    keys = {key for key, _ in written}
    undo = [
        (key, data)
        for key, data in written
        if not key.startswith(REVERSAL_PREFIX)
        and key not in concluded
        and REVERSAL_PREFIX + key not in keys
    ]
    late = next((e for _, e in todo if e.kind is EntryKind.RUN_REPORTED and e.failed_gates), None)
    gate = late.failed_gates[0] if late is not None else None
    for key, data in reversed(undo):
        was, back = Tier(data["to"]), Tier(data["from"])
        reason = f"a late entry reverses the change {key} ({was.value} back to {back.value})"
        if late is not None:
            reason = (
                f"a run that finished {late.at.isoformat()} was reported late with a failed "
                f"gate; the change {was.value} from {back.value} ({key}) no longer holds"
            )
        change = TierChange(
            behavior=out.name,
            at=now,
            from_tier=was,
            to_tier=back,
            cause="reversal",
            gate=gate.name if gate is not None else None,
            reason=reason,
            run_id=late.data.get("run_id") if late is not None else None,
        )
        _record_change(out, change, REVERSAL_PREFIX + key, moves_clock=False)
    return len(undo)


# the key of the entry that undoes the tier change whose entry has the key that follows
REVERSAL_PREFIX = "reversed:"


def change_key(change: TierChange) -> str:
    return f"tier:{canonical_time(change.at)}:{change.from_tier.value}>{change.to_tier.value}"


def _record_change(out: Fold, change: TierChange, key: str, *, moves_clock: bool = True) -> None:
    up = change.to_tier.rank > change.from_tier.rank
    kind = EntryKind.PROMOTED if up else EntryKind.DEMOTED
    notice = (Promoted if up else Demoted)(
        out.name,
        change.at,
        key,
        change.from_tier,
        change.to_tier,
        change.cause,
        change.gate,
        change.reason,
        change.run_id,
        None,
        change.week,
    )
    out.derived.append(NewEntry(out.name, kind.value, change.at, key, notice.facts()))
    out.notices.append(notice)
    # a reversal is not a change the ladder concluded: it never says which of them are recorded
    if not moves_clock:
        return
    if out.last_change_at is None or change.at > out.last_change_at:
        out.last_change_at = change.at


def link_runs(
    conn: Connection, notices: Iterable[Notice], known: Mapping[str, str | None] | None = None
) -> list[Notice]:
    """The notices with each tier change's workflow ID filled in (so that an alert
    can link to the run): from `known` (the runs of this transaction), else from the runs
    table, which is read only for a run it does not know."""
    out, known = list(notices), known or {}
    unknown = {
        n.run_id
        for n in out
        if isinstance(n, TierChanged) and n.run_id is not None and n.run_id not in known
    }
    found = dict(known)
    if unknown:
        query = sa.select(T_RUNS.c.run_id, T_RUNS.c.workflow_id).where(
            T_RUNS.c.run_id.in_(sorted(unknown))
        )
        found.update({str(r): w for r, w in conn.execute(query).all()})
    return [
        replace(n, workflow_id=found.get(n.run_id))
        if isinstance(n, TierChanged) and n.run_id is not None and n.workflow_id is None
        else n
        for n in out
    ]


def state_changed(
    state: BehaviorState,
    before: Any | None,
    values: Mapping[str, Any],
    at: datetime,
    *,
    version: int,
    preset_version: int,
) -> StateChanged | None:
    """A StateChanged notice when the row the operator reads differs from `before` (a state
    row with its behavior's versions, or None for a new behavior); `values` are `state`'s
    columns (`state_values`)."""
    if before is not None and (
        before.tier, before.status, before.clean_days, bool(before.candidate),
        before.last_gate_failure, before.last_failure_gate, before.last_failure_reason,
        before.version, before.preset_version,
    ) == (
        values["tier"], values["status"], values["clean_days"], values["candidate"],
        values["last_gate_failure"], values["last_failure_gate"], values["last_failure_reason"],
        version, preset_version,
    ):  # fmt: skip
        return None  # what the operator reads is as it was
    return StateChanged(
        state.behavior,
        at,
        tier=state.tier,
        status=state.status,
        clean_days=state.clean_days,
        candidate=state.candidate,
        last_gate_failure=values["last_gate_failure"],
        last_failure_gate=values["last_failure_gate"],
        last_failure_reason=values["last_failure_reason"],
        version=version,
        preset_version=preset_version,
    )


def store_folds(
    uow: UnitOfWork,
    rows: Mapping[str, Any],
    folds: Sequence[Fold],
    before: Mapping[str, Any | None] | None = None,
) -> None:
    """Append the folds' derived entries, raise their notices (and a StateChanged for each
    behavior whose visible row changed), and update their state rows. `rows` are the state
    rows the folds started from; `before`, what the operator saw until now, if not those."""
    now = uow.now
    uow.append([d for f in folds for d in f.derived])
    uow.notify(*link_runs(uow.conn, (n for f in folds for n in f.notices)))
    with_acc, without_acc = [], []
    for f in folds:
        values = state_values(f.state)
        row = rows[f.name]
        changed = state_changed(
            f.state,
            row if before is None else before.get(f.name),
            values,
            now,
            version=row.version,
            preset_version=row.preset_version,
        )
        if changed is not None:
            uow.notify(changed)
        values.update(behavior=f.name, last_change_at=f.last_change_at, updated_at=now)
        if f.acc_changed:
            values.update(accumulator=f.acc.to_json(), last_seq=f.last_seq)
            with_acc.append(values)
        else:
            without_acc.append(values)
    store.update_states(uow.conn, with_acc)
    store.update_states(uow.conn, without_acc)


def commit_facts(
    ledger: LedgerCore,
    uow: UnitOfWork,
    name: str,
    facts: Sequence[NewEntry],
    row: Any = None,
    *,
    before: Mapping[str, Any | None] | None = None,
) -> Fold:
    """Append primitive facts for one behavior, fold them (with anything of it not yet
    folded), and store the consequences. `row` is its state row, if already read; `before`,
    as for `store_folds`."""
    uow.append(facts)
    uow.flush()
    if row is None:
        row = state_row(uow.conn, name)
    pending = store.primitive_entries_of(uow.conn, name, row.last_seq)
    out = fold(uow.conn, row, pending, ledger.policy_for(row), uow.now)
    store_folds(uow, {name: row}, [out], before)
    return out
