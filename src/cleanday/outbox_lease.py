"""The lease that keeps one outbox drainer active across service instances.

One row of `outbox_leases` per lease name. Taking or renewing it is one conditional UPDATE
("mine, or expired"), atomic on SQLite (one writer at a time) and on PostgreSQL (the row lock,
with the condition checked again after it): of two instances racing, one gets the row. The
holder renews it while it drains; a holder that dies stops renewing, and once its lease has
expired another instance takes it over. A holder that stalls past its lease and wakes up finds
it taken at its next renewal and stops (what it was sending at that moment is the one message
that may go twice, which the senders make harmless).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from cleanday.db import write_connection
from cleanday.models import T_OUTBOX_LEASES

log = logging.getLogger("cleanday.outbox")

DRAIN = "drain"


def holder_name() -> str:
    """This process, as a lease holder: host, PID and a random tail (PIDs are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:128]


class Lease:
    """`held()` takes or renews the lease (at most every `ttl_s / 3`) and says whether this
    process holds it; `release()` gives it up at once (a clean shutdown)."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl_s: float = 30.0,
        name: str = DRAIN,
        holder: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("the outbox lease needs a positive duration")
        self.engine = engine
        self.ttl = timedelta(seconds=ttl_s)
        self.name = name
        self.holder = holder or holder_name()
        self.clock = clock or (lambda: datetime.now(UTC))
        self._until: datetime | None = None  # our lease's expiry, as we last wrote it

    def held(self) -> bool:
        now = self.clock()
        if self._until is not None and now < self._until - self.ttl * (2 / 3):
            return True  # renewed less than a third of a lease ago
        return self._take(now)

    def _take(self, now: datetime) -> bool:
        t = T_OUTBOX_LEASES.c
        until = now + self.ttl
        had = self._until is not None
        with write_connection(self.engine) as conn:
            won = conn.execute(
                sa.update(T_OUTBOX_LEASES)
                .where(t.name == self.name, sa.or_(t.holder == self.holder, t.expires_at <= now))
                .values(
                    holder=self.holder,
                    expires_at=until,
                    acquired_at=sa.case((t.holder == self.holder, t.acquired_at), else_=now),
                )
            ).rowcount
            if not won:
                exists = conn.execute(
                    sa.select(t.name).where(t.name == self.name)
                ).scalar_one_or_none()
                if exists is None:  # a lease name the migration did not seed
                    conn.execute(
                        sa.insert(T_OUTBOX_LEASES).values(
                            name=self.name, holder=self.holder, expires_at=until, acquired_at=now
                        )
                    )
                    won = 1
        if won:
            if not had:
                log.info("outbox: this process (%s) drains the outbox now", self.holder)
            self._until = until
            return True
        if had:
            log.warning("outbox: lease lost to another instance; this process stops draining")
        self._until = None
        return False

    def release(self) -> None:
        if self._until is None:
            return
        t = T_OUTBOX_LEASES.c
        with write_connection(self.engine) as conn:
            conn.execute(
                sa.update(T_OUTBOX_LEASES)
                .where(t.name == self.name, t.holder == self.holder)
                .values(holder=None, expires_at=self.clock())
            )
        self._until = None

    def current_holder(self) -> tuple[str | None, datetime | None]:
        t = T_OUTBOX_LEASES.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.holder, t.expires_at).where(t.name == self.name)).first()
        return (row.holder, row.expires_at) if row is not None else (None, None)
