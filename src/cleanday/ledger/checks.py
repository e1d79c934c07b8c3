"""What `ledger verify` checks beyond the hash chain: that every materialized state and every
sign-off row still says what the chain says.

- A state row records the chain position it was folded to (`last_seq`); the check refolds the
  behavior's entries up to that position and compares the accumulator field by field, and the
  tier and status the operator reads with what that fold shows.
- A `pending_items` row's status must be the one its chained sign-off facts give (approved,
  released, expired entries; a rejection's override entry), pending when there is none.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from cleanday import ladder
from cleanday.chain import StateProblem, canonical_json
from cleanday.domain import EntryKind
from cleanday.ledger import store
from cleanday.ledger.core import LedgerCore
from cleanday.models import T_ENTRIES, T_PENDING

_SIGN_OFFS = {
    EntryKind.APPROVED.value: "approved",
    EntryKind.RELEASED.value: "released",
    EntryKind.EXPIRED.value: "expired",
}


def check_states(ledger: LedgerCore, conn: Connection) -> list[StateProblem]:
    """Each behavior's stored state against a refold of its chain up to the recorded seq."""
    problems: list[StateProblem] = []
    for name, row in sorted(store.state_rows(conn).items()):
        policy = ledger.policy_for(row)
        entries = [e for s, e in store.primitive_entries(conn, name) if s <= row.last_seq]
        chained = ladder.fold(name, entries, policy)
        try:
            stored = ladder.Accumulator.from_json(dict(row.accumulator or {}))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(
                StateProblem(
                    behavior=name,
                    what="accumulator",
                    problem=f"the stored accumulator cannot be read ({exc}); run ledger rebuild",
                )
            )
            continue
        want, have = chained.to_json(), stored.to_json()
        differ = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
        if differ:
            shown = ", ".join(f"{k}: stored {_short(have.get(k))}, chain {_short(want.get(k))}"
                              for k in differ[:4])  # fmt: skip
            problems.append(
                StateProblem(
                    behavior=name,
                    what="accumulator",
                    problem=f"the stored accumulator differs from the chain folded to seq "
                    f"{row.last_seq} ({shown}); permits follow the chain; "
                    "`cleanday ledger rebuild` rewrites it from the chain",
                )
            )
        seen = ladder.view(chained, policy, row.updated_at)
        for col, value in (("tier", seen.tier.value), ("status", seen.status.value)):
            if getattr(row, col) != value:
                problems.append(
                    StateProblem(
                        behavior=name,
                        what=col,
                        problem=f"the stored {col} is {getattr(row, col)!r}, the chain says "
                        f"{value!r}; `cleanday ledger rebuild` rewrites it from the chain",
                    )
                )
    return problems


def check_items(conn: Connection) -> list[StateProblem]:
    """Each proposal's and staged item's status against its chained sign-off facts."""
    chained: dict[tuple[str, str], tuple[str, int]] = {}
    query = sa.select(T_ENTRIES.c.seq, T_ENTRIES.c.behavior, T_ENTRIES.c.kind, T_ENTRIES.c.data)
    kinds = [*_SIGN_OFFS, EntryKind.OVERRIDE.value]
    for e in conn.execute(query.where(T_ENTRIES.c.kind.in_(kinds)).order_by(T_ENTRIES.c.seq)):
        data = e.data or {}
        if e.kind in _SIGN_OFFS:
            chained[(e.behavior, str(data.get("item_id")))] = (_SIGN_OFFS[e.kind], e.seq)
        elif data.get("kind") == "rejected":
            for item in data.get("items") or ():
                chained[(e.behavior, str(item))] = ("rejected", e.seq)
    problems: list[StateProblem] = []
    rows = conn.execute(
        sa.select(T_PENDING.c.behavior, T_PENDING.c.item_id, T_PENDING.c.status).order_by(
            T_PENDING.c.id
        )
    )
    for r in rows:
        status, seq = chained.pop((r.behavior, r.item_id), ("pending", 0))
        if r.status != status:
            source = f"entry seq {seq}" if seq else "no sign-off entry"
            problems.append(
                StateProblem(
                    behavior=r.behavior,
                    what=f"item {r.item_id}",
                    problem=f"pending_items says {r.status!r}, the chain says {status!r} "
                    f"({source}); permits follow the chain",
                )
            )
    for (behavior, item), (status, seq) in sorted(chained.items()):
        problems.append(
            StateProblem(
                behavior=behavior,
                what=f"item {item}",
                problem=f"entry seq {seq} signs it off as {status!r}, but pending_items has no "
                "such item (deleted)",
            )
        )
    return problems


def _short(value: Any) -> str:
    text = canonical_json(value)
    return text if len(text) <= 60 else text[:57] + "..."
