"""What the operator sees of the outbox and does with it (`cleanday outbox`): what waits per
target, a retry now instead of after the back-off, and a drop, which is logged and kept on the
row, and is the only way a row leaves the outbox without being delivered."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from cleanday.db import write_connection
from cleanday.errors import OutboxError
from cleanday.models import T_OUTBOX

log = logging.getLogger("cleanday.outbox")


@dataclass(frozen=True, slots=True)
class Waiting:
    """The undelivered rows of one target: how many, since when, the head row (the next to
    go) with its attempts, its last error and its next attempt (None: at the next drain)."""

    channel: str
    target: str  # "" while the row has not been routed yet
    rows: int
    since: datetime
    head_id: int
    head_kind: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("since", "next_attempt_at"):
            value = out[name]
            out[name] = value.isoformat() if value is not None else None
        return out


def _undelivered() -> Any:
    o = T_OUTBOX.c
    return sa.and_(o.delivered_at.is_(None), o.dropped_at.is_(None))


def waiting(engine: Engine) -> list[Waiting]:
    """Per channel and target, what waits, oldest target first."""
    o = T_OUTBOX.c
    target = sa.func.coalesce(o.target, "")
    with engine.connect() as conn:
        groups = conn.execute(
            sa.select(
                o.channel,
                target.label("target"),
                sa.func.count().label("rows"),
                sa.func.min(o.created_at).label("since"),
                sa.func.min(o.id).label("head_id"),
            )
            .where(_undelivered())
            .group_by(o.channel, target)
            .order_by(sa.func.min(o.id))
        ).all()
        heads = {
            r.id: r
            for r in conn.execute(
                sa.select(o.id, o.kind, o.attempts, o.last_error, o.next_attempt_at).where(
                    o.id.in_([g.head_id for g in groups])
                )
            )
        }
    out: list[Waiting] = []
    for g in groups:
        head = heads[g.head_id]
        out.append(
            Waiting(
                channel=g.channel,
                target=g.target,
                rows=int(g.rows),
                since=g.since,
                head_id=g.head_id,
                head_kind=head.kind,
                attempts=head.attempts,
                last_error=head.last_error,
                next_attempt_at=head.next_attempt_at,
            )
        )
    return out


def retry(engine: Engine, row_id: int | None = None) -> int:
    """Make a waiting row (or, with no ID, every waiting row) due at the next drain, whatever
    its back-off; returns how many rows were due later and are due now."""
    o = T_OUTBOX.c
    with write_connection(engine) as conn:
        if row_id is not None:
            _waiting_row(conn, row_id)
        query = sa.update(T_OUTBOX).where(_undelivered(), o.next_attempt_at.is_not(None))
        if row_id is not None:
            query = query.where(o.id == row_id)
        return int(conn.execute(query.values(next_attempt_at=None)).rowcount)


def drop(engine: Engine, row_id: int, *, reason: str, by: str, now: datetime) -> dict[str, Any]:
    """Take a waiting row out of the outbox undelivered: the reason, who and when are kept on
    the row and logged. Returns the row as it was."""
    if not reason.strip():
        raise OutboxError("a drop needs a reason (--reason), which is kept with the row")
    o = T_OUTBOX.c
    with write_connection(engine) as conn:
        row = _waiting_row(conn, row_id)
        conn.execute(
            sa.update(T_OUTBOX)
            .where(o.id == row_id)
            .values(dropped_at=now, dropped_by=by[:128], drop_reason=reason, next_attempt_at=None)
        )
    log.warning(
        "outbox row %d (%s %s, %s) dropped undelivered by %s: %s",
        row_id, row["channel"], row["kind"], row["dedupe_key"], by, reason,
    )  # fmt: skip
    return row


def _waiting_row(conn: sa.Connection, row_id: int) -> dict[str, Any]:
    o = T_OUTBOX.c
    row = conn.execute(
        sa.select(o.id, o.channel, o.kind, o.dedupe_key, o.delivered_at, o.dropped_at).where(
            o.id == row_id
        )
    ).first()
    if row is None:
        raise OutboxError(f"no outbox row {row_id}; `cleanday outbox` lists what waits")
    if row.delivered_at is not None:
        raise OutboxError(f"outbox row {row_id} was delivered at {row.delivered_at.isoformat()}")
    if row.dropped_at is not None:
        raise OutboxError(f"outbox row {row_id} was dropped at {row.dropped_at.isoformat()}")
    return dict(row._mapping)
