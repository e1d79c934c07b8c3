"""Integrity and replay: verify the hash chain, rebuild every materialized state from the
entries, and replay history under another policy (a backtest that writes nothing)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday import chain, ladder
from cleanday.chain import VerifyResult
from cleanday.domain import Policy
from cleanday.errors import LedgerIntegrityError
from cleanday.ledger import store
from cleanday.ledger.checks import check_items, check_states
from cleanday.ledger.core import LedgerCore
from cleanday.ledger.folding import refold, state_changed
from cleanday.ledger.rows import row_of_state, state_values
from cleanday.ledger.schemas import BehaviorRow, RebuildResult, StateDifference
from cleanday.models import T_BEHAVIORS, T_STATES

# the state columns whose differences `rebuild` reports
_COMPARED = (
    "tier",
    "status",
    "clean_days",
    "candidate",
    "last_gate_failure",
    "last_failure_reason",
)


def verify(ledger: LedgerCore) -> VerifyResult:
    """Check the hash chain (every edited, inserted or deleted entry is named), then every
    stored state and sign-off row against it (`cleanday.ledger.checks`)."""
    with ledger.engine.connect() as conn:
        result = chain.verify(conn)
        states = check_states(ledger, conn) + check_items(conn)
        count = int(conn.execute(sa.select(sa.func.count()).select_from(T_STATES)).scalar_one())
    return result.model_copy(
        update={"state_problems": states, "states": count, "ok": result.ok and not states}
    )


def refuse_broken_chain(conn: Connection) -> None:
    """Raise LedgerIntegrityError naming the first bad entry when the chain does not verify:
    a fold of a forged or damaged history must not become the state permits are granted on."""
    result = chain.verify(conn)
    if result.ok:
        return
    first = min(result.problems, key=lambda p: p.seq)
    raise LedgerIntegrityError(
        f"refusing to rebuild: the chain does not verify; the first bad entry is seq "
        f"{first.seq} ({first.behavior or '?'}, {first.kind or '?'}): {first.problem} "
        f"({len(result.problems)} problem(s) in all; `cleanday ledger verify` lists them). "
        "Restore the ledger database from a backup taken before that entry, then run "
        "`cleanday ledger verify` and `cleanday ledger rebuild` again; the stored states are "
        "left as they were"
    )


def _fold_all(
    conn: Connection, policy_for: Callable[[str], Policy]
) -> Iterator[tuple[Any, ladder.Accumulator, int, int]]:
    """(behavior row, accumulator, last primitive seq, entries) for every behavior, each
    folded from scratch by the ladder."""
    behaviors = conn.execute(
        sa.select(T_BEHAVIORS.c.name, T_BEHAVIORS.c.version, T_BEHAVIORS.c.preset_version).order_by(
            T_BEHAVIORS.c.name
        )
    ).all()
    for b in behaviors:
        acc, last_seq, n = refold(conn, b.name, policy_for(b.name))
        yield b, acc, last_seq, n


def rebuild(ledger: LedgerCore) -> RebuildResult:
    """Recompute every materialized state from the entries, fix it, report differences;
    refused (LedgerIntegrityError) when the chain itself does not verify."""
    diffs: list[StateDifference] = []
    total = count = 0
    with ledger.unit_of_work() as uow:
        conn, now = uow.conn, uow.now
        refuse_broken_chain(conn)
        policy = ledger.policy_of(conn)
        stored = store.state_rows(conn)
        updates = []
        for b, acc, last_seq, n in _fold_all(conn, lambda _n: policy):
            count += 1
            total += n
            state = ladder.view(acc, policy, now)
            values = state_values(state)
            old = stored.get(b.name)
            changed = state_changed(
                state, old, values, now, version=b.version, preset_version=b.preset_version
            )
            if changed is not None:
                uow.notify(changed)
            if old is None:
                diffs.append(
                    StateDifference(behavior=b.name, field="row", stored=None, rebuilt="created")
                )
                conn.execute(
                    sa.insert(T_STATES).values(
                        behavior=b.name,
                        **values,
                        accumulator=acc.to_json(),
                        last_seq=last_seq,
                        last_change_at=None,
                        updated_at=now,
                    )
                )
                continue
            for col in _COMPARED:
                a, r = getattr(old, col), values[col]
                if a != r:
                    diffs.append(
                        StateDifference(
                            behavior=b.name, field=col, stored=_jsonable(a), rebuilt=_jsonable(r)
                        )
                    )
            values.update(
                behavior=b.name, accumulator=acc.to_json(), last_seq=last_seq, updated_at=now
            )
            updates.append(values)
        store.update_states(conn, updates)
    return RebuildResult(behaviors=count, entries=total, differences=diffs)


def replay(ledger: LedgerCore, policy: Policy) -> list[BehaviorRow]:
    """Every behavior's state today under another policy; nothing is written."""
    now = ledger.now()
    with ledger.engine.connect() as conn:
        return [
            row_of_state(
                ladder.view(acc, policy, now),
                version=b.version,
                preset_version=b.preset_version,
                updated_at=None,
            )
            for b, acc, _, _ in _fold_all(conn, lambda _n: policy)
        ]


def _jsonable(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date | datetime) else v
